"""Bindings of the bijection topic (`genmath.derivations.flows`): each layer of
`genmath.core.change_of_variables` with its parameters set from the derivation's symbols.

For a layer $f$ at a point $x$ (float64), `_logdet_quartet` returns four values that must all
equal the derivation's $\\log|\\det J_f(x)|$: the forward log-determinant; the log-determinant
of the autograd Jacobian of ``forward``; minus the inverse's log-determinant at $y = f(x)$, plus
$10^{9}$ times the squared round-trip error $\\|f^{-1}(y) - x\\|^2$ (an inverse that does not
invert shows there); and minus the log-determinant of the autograd Jacobian of ``inverse``.
"""

from __future__ import annotations

import sympy as sp

from . import flows as T
from ._engine import Binding, LogUniform, Uniform
from ._registry import register

_ROUND_TRIP_WEIGHT = 1e9


def _logdet_quartet(layer, x):
    """Four ``(n,)`` tensors for a layer and points ``x`` ``(n, d)`` (see the module doc)."""
    import torch

    y, logdet = layer.forward(x)
    back, inverse_logdet = layer.inverse(y)
    round_trip = (back - x).pow(2).reshape(x.shape[0], -1).sum(-1)
    forward_jac, inverse_jac = [], []
    for i in range(x.shape[0]):
        jf = torch.autograd.functional.jacobian(lambda v: layer.forward(v[None])[0][0], x[i])
        ji = torch.autograd.functional.jacobian(lambda v: layer.inverse(v[None])[0][0], y[i].detach())
        forward_jac.append(torch.linalg.slogdet(jf)[1])
        inverse_jac.append(torch.linalg.slogdet(ji)[1])
    return (
        logdet.detach(),
        torch.stack(forward_jac),
        (-inverse_logdet + _ROUND_TRIP_WEIGHT * round_trip).detach(),
        -torch.stack(inverse_jac),
    )


def _per_point(make):
    """``evaluate`` that builds ``(layer, x)`` for each point with ``make(points, j)`` and
    stacks the four values of `_logdet_quartet`."""

    def evaluate(points):
        import torch

        rows = []
        n = next(iter(points.values())).shape[0]
        for j in range(n):
            layer, x = make(points, j)
            rows.append(torch.cat(_logdet_quartet(layer, x)))
        return tuple(torch.stack(rows).T)

    return evaluate


def _register(derivation, code, expression, make, domain, description, where=None, samples=4):
    register(
        Binding(
            derivation=derivation,
            code=code,
            expression=(expression,) * 4,
            where=where or {},
            evaluate=_per_point(make),
            domain=domain,
            samples=samples,
            description=description,
        )
    )


# --------------------------------------------------------------------------- coupling

_k1, _l1, _k3, _l3, _r1 = sp.symbols("k_1 l_1 k_3 l_3 r_1", real=True)
_clamp = sp.Symbol("C", positive=True)
_context = sp.Symbol("c", real=True)


def _affine_conditioner(points, j, with_context):
    """A conditioner whose shifts and log-scales are affine in x_A (and in the context)."""
    import torch

    k = torch.stack([points[_k1][j], points[_k3][j]])
    l_ = torch.stack([points[_l1][j], points[_l3][j]])
    p = torch.tensor([0.6, -0.4], dtype=torch.float64)  # shifts: they do not enter the log-det
    r = points[_r1][j] if with_context else 0.0

    class Conditioner(torch.nn.Module):
        def forward(self, inputs):
            x_a = inputs[..., :1]
            extra = inputs[..., 1:2] if with_context else 0.0
            shift = p * x_a + 0.2 - 0.3 * extra
            log_scale = k * x_a + l_ + r * extra
            return torch.cat([shift, log_scale], -1)

    return Conditioner()


def _coupling_maker(clamp, with_context):
    def make(points, j):
        import torch

        from ..core.change_of_variables import AffineCoupling

        layer = AffineCoupling(
            3,
            _affine_conditioner(points, j, with_context),
            mask=torch.tensor([False, True, False]),
            context_features=1 if with_context else 0,
            scale_clamp=float(points[_clamp][j]) if clamp else None,
        )
        x = torch.stack([points.get(T.x1, 0.7 + 0 * points[T.x2])[j], points[T.x2][j],
                         points.get(T.x3, -1.1 + 0 * points[T.x2])[j]])[None]
        if with_context:
            context = points[_context][j].reshape(1, 1)

            class WithContext:  # the same layer with its context bound
                def forward(self, v):
                    return layer.forward(v, context)

                def inverse(self, v):
                    return layer.inverse(v, context)

            return WithContext(), x
        return layer, x

    return make


def _coupling_where(clamp, with_context):
    def s(k, l_):
        raw = k * T.x2 + l_ + (_r1 * _context if with_context else 0)
        return _clamp * sp.tanh(raw / _clamp) if clamp else raw

    return {T.s1(T.x2): s(_k1, _l1), T.s3(T.x2): s(_k3, _l3)}


for _clamp_on, _ctx in ((False, False), (True, False), (False, True)):
    _domain = {
        T.x1: Uniform(-2, 2),
        T.x2: Uniform(-2, 2),
        T.x3: Uniform(-2, 2),
        _k1: Uniform(-1, 1),
        _k3: Uniform(-1, 1),
        _l1: Uniform(-1, 1),
        _l3: Uniform(-1, 1),
    }
    if _clamp_on:
        _domain[_clamp] = LogUniform(0.2, 5)
    if _ctx:
        _domain.update({_r1: Uniform(-1, 1), _context: Uniform(-2, 2)})
    _register(
        "D-flow-coupling-logdet",
        (f"{T._CODE}.AffineCoupling",),
        T.COUPLING_LOGDET,
        _coupling_maker(_clamp_on, _ctx),
        _domain,
        "AffineCoupling, mask A = {x_2}"
        + (", scale_clamp" if _clamp_on else "")
        + (", with a context" if _ctx else "")
        + ": log-det, autograd Jacobians, inverse",
        where=_coupling_where(_clamp_on, _ctx),
    )

# --------------------------------------------------------------------------- MAF

_K21, _K31, _K32, _m1, _m2, _m3 = sp.symbols("K_21 K_31 K_32 m_1 m_2 m_3", real=True)


def _maf_maker(ordering):
    def make(points, j):
        import torch

        from ..core.change_of_variables import MaskedAutoregressive

        layer = MaskedAutoregressive(3, (), ordering=list(ordering)).double()
        net = layer.network.net[0]
        slopes = {(1, 0): _K21, (2, 0): _K31, (2, 1): _K32}
        offsets = (_m1, _m2, _m3)
        with torch.no_grad():
            for k in range(3):  # position k of the ordering is feature ordering[k]
                shift_row, scale_row = ordering[k], 3 + ordering[k]
                net.bias[shift_row] = 0.1 * k - 0.2
                net.bias[scale_row] = points[offsets[k]][j]
                for m in range(3):
                    slope = slopes.get((k, m))
                    net.weight[scale_row, ordering[m]] = (
                        points[slope][j] if slope is not None else 0.3 + 0.2 * k - 0.1 * m
                    )
                    net.weight[shift_row, ordering[m]] = 0.25 * (k - m) + 0.05
        x = torch.zeros(1, 3, dtype=torch.float64)
        for k, symbol in enumerate((T.x1, T.x2, T.x3)):
            x[0, ordering[k]] = points[symbol][j] if symbol in points else 0.9 - 0.4 * k
        return layer, x

    return make


for _ordering in ((0, 1, 2), (1, 2, 0)):
    _register(
        "D-flow-maf-logdet",
        (f"{T._CODE}.MaskedAutoregressive",),
        T.MAF_LOGDET,
        _maf_maker(_ordering),
        {
            **{s: Uniform(-2, 2) for s in (T.x1, T.x2, T.x3)},
            **{s: Uniform(-0.8, 0.8) for s in (_K21, _K31, _K32, _m1, _m2, _m3)},
        },
        f"MaskedAutoregressive, one masked layer, ordering {list(_ordering)}, forbidden "
        "weights nonzero: log-det, autograd Jacobians, sequential inverse",
        where={
            T.s1(): _m1,
            T.s2(T.x1): _K21 * T.x1 + _m2,
            T.s3(T.x1, T.x2): _K31 * T.x1 + _K32 * T.x2 + _m3,
        },
    )

# --------------------------------------------------------------------------- planar


def _planar_make(points, j):
    import torch

    from ..core.change_of_variables import Planar

    layer = Planar(3).double()
    with torch.no_grad():
        layer.u.copy_(torch.stack([points[s][j] for s in T.u]))
        layer.w.copy_(torch.stack([points[s][j] for s in T.w]))
        layer.b.fill_(float(points[T.b][j]))
    return layer, torch.stack([points[s][j] for s in T.z])[None]


def _planar_det_by_code(points):
    import torch

    rows = []
    for j in range(points[T.b].shape[0]):
        layer, x = _planar_make(points, j)
        quartet = _logdet_quartet(layer, x)
        rows.append(torch.cat([q.exp() for q in quartet] + [(layer.w @ layer.u_hat()).reshape(1)]))
    return tuple(torch.stack(rows).T.detach())


_det_hat = 1 + (1 - sp.tanh(T._pre) ** 2) * T._m
register(
    Binding(
        derivation="D-flow-planar",
        code=(f"{T._CODE}.Planar", f"{T._CODE}.Planar.u_hat"),
        expression=(_det_hat,) * 4 + (T._m,),
        evaluate=_planar_det_by_code,
        domain={
            **{s: Uniform(-1.5, 1.5) for s in (*T.u, *T.w, *T.z)},
            T.b: Uniform(-1, 1),
        },
        samples=12,
        description=(
            "Planar: det J (forward, autograd, inverse by Newton, its autograd Jacobian) with "
            "u_hat in place of u, and w . u_hat = m(w . u)"
        ),
    )
)

# --------------------------------------------------------------------------- LU affine, elementwise


def _lu_make(kind):
    def make(points, j):
        import torch

        from ..core.change_of_variables import Affine, ElementwiseAffine

        x = torch.tensor([[0.3, -1.2, 0.8]], dtype=torch.float64)
        if kind == "elementwise":
            theta = torch.stack([points[s][j] for s in (T.th1, T.th2, T.th3)])
            layer = ElementwiseAffine(3, log_scale=theta, shift=[0.5, -0.1, 0.2]).double()
            return layer, x
        if kind == "from_matrix":
            W = _plu_matrix(points, j)
            return Affine.from_matrix(W, torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)), x
        layer = Affine(3, permutation=[1, 2, 0], diagonal=kind).double()
        with torch.no_grad():
            layer.lower.zero_()
            layer.upper.zero_()
            layer.lower[1, 0], layer.lower[2, 0], layer.lower[2, 1] = (
                points[T.l21][j], points[T.l31][j], points[T.l32][j]
            ) if T.l21 in points else (0.4, -0.7, 0.3)
            layer.upper[0, 1], layer.upper[0, 2], layer.upper[1, 2] = (
                points[T.u12][j], points[T.u13][j], points[T.u23][j]
            ) if T.u12 in points else (0.5, 0.2, -0.6)
            diag = (T.u11, T.u22, T.u33) if kind == "signed" else (T.th1, T.th2, T.th3)
            layer.diag.copy_(torch.stack([points[s][j] for s in diag]))
            layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        return layer, x

    return make


def _plu_matrix(points, j):
    """W = P L U from the points (the input of `Affine.from_matrix`), P the permutation
    (1, 2, 0) of the derivation: (P v)_i = v_{(1, 2, 0)[i]}."""
    import torch

    def value(symbol, default):
        return float(points[symbol][j]) if symbol in points else default

    L = torch.tensor(
        [[1.0, 0, 0], [value(T.l21, 0.4), 1, 0], [value(T.l31, -0.7), value(T.l32, 0.3), 1]],
        dtype=torch.float64,
    )
    U = torch.tensor(
        [
            [value(T.u11, 1.0), value(T.u12, 0.5), value(T.u13, 0.2)],
            [0, value(T.u22, 1.0), value(T.u23, -0.6)],
            [0, 0, value(T.u33, 1.0)],
        ],
        dtype=torch.float64,
    )
    return (L @ U)[[1, 2, 0]]


def _matrix_entries_by_code(points):
    import torch

    rows = []
    for j in range(points[T.u11].shape[0]):
        layer, _ = _lu_make("signed")(points, j)
        rows.append(layer.matrix().detach().reshape(-1))
    keep = [k for k, e in enumerate(T.PLU) if not e.is_Atom]
    return tuple(torch.stack(rows).T[keep])


_signed_diagonal = {s: Uniform(-3, 3) for s in (T.u11, T.u22, T.u33)}
_positive_diagonal = {s: Uniform(-2, 2) for s in (T.th1, T.th2, T.th3)}
_triangles = {s: Uniform(-1.5, 1.5) for s in (T.l21, T.l31, T.l32, T.u12, T.u13, T.u23)}
for _kind, _expression, _domain, _what, _code in (
    ("signed", T.LU_LOGDET, _signed_diagonal, "Affine(diagonal='signed')", "Affine"),
    ("positive", T.POSITIVE_LOGDET, _positive_diagonal, "Affine(diagonal='positive')", "Affine"),
    ("from_matrix", T.LU_LOGDET, {**_signed_diagonal, **_triangles}, "Affine.from_matrix(P L U)",
     "Affine.from_matrix"),
    ("elementwise", T.POSITIVE_LOGDET, _positive_diagonal, "ElementwiseAffine", "ElementwiseAffine"),
):
    _register(
        "D-flow-lu-logdet",
        (f"{T._CODE}.{_code}",),
        _expression,
        _lu_make(_kind),
        _domain,
        f"{_what}: log-det, autograd Jacobians, inverse (triangular solves)",
    )
register(
    Binding(
        derivation="D-flow-lu-logdet",
        code=(f"{T._CODE}.Affine.matrix",),
        expression=tuple(e for e in T.PLU if not e.is_Atom),
        evaluate=_matrix_entries_by_code,
        domain={**_signed_diagonal, **_triangles},
        samples=8,
        description="Affine.matrix() is P L U, entry by entry, permutation (1, 2, 0)",
    )
)

# --------------------------------------------------------------------------- composition


def _composition_maker(inverted):
    def make(points, j):
        import torch

        from ..core.change_of_variables import Affine, Compose, ElementwiseAffine, Inverse

        theta = torch.stack([points[T.ct1][j], points[T.ct2][j]])
        first = ElementwiseAffine(2, log_scale=theta, shift=[0.3, -0.5]).double()
        second = Affine(2, permutation=[1, 0], diagonal="signed").double()
        with torch.no_grad():
            second.lower.zero_()
            second.upper.zero_()
            second.lower[1, 0], second.upper[0, 1] = 0.6, -0.8  # do not enter the log-det
            second.diag.copy_(torch.stack([points[T.cu11][j], points[T.cu22][j]]))
            second.bias.copy_(torch.tensor([0.2, 0.1]))
        layer = Compose(first, second)
        x = torch.tensor([[0.4, -0.9]], dtype=torch.float64)
        if not inverted:
            return layer, x

        class Flipped:  # Inverse(f) run backwards is f: bound through both of its directions
            def __init__(self):
                self.inner = Inverse(layer)

            def forward(self, v):
                return self.inner.inverse(v)

            def inverse(self, v):
                return self.inner.forward(v)

        return Flipped(), x

    return make


for _inverted in (False, True):
    _register(
        "D-flow-composition",
        (f"{T._CODE}.Compose",) + ((f"{T._CODE}.Inverse",) if _inverted else ()),
        T.COMPOSED_LOGDET,
        _composition_maker(_inverted),
        {T.cu11: Uniform(-3, 3), T.cu22: Uniform(-3, 3), T.ct1: Uniform(-2, 2), T.ct2: Uniform(-2, 2)},
        ("Inverse(" if _inverted else "")
        + "Compose(ElementwiseAffine, Affine)"
        + (")'s inverse" if _inverted else "")
        + ": log-det, autograd Jacobians, inverse",
    )

# --------------------------------------------------------------------------- ActNorm


def _actnorm_by_code(points):
    import torch

    from ..core.change_of_variables import ActNorm

    rows = []
    for j in range(points[T.xa].shape[0]):
        layer = ActNorm(1).double()
        batch = torch.stack([points[T.xa][j], points[T.xa][j] + points[T.delta][j]])[:, None]
        y, logdet = layer.forward(batch)
        rows.append(torch.stack([y[0, 0], y[1, 0], logdet[0]]).detach())
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-actnorm-init",
        code=(f"{T._CODE}.ActNorm.initialize",),
        expression=(*tuple(T._actnorm_start)[:2], T.ACTNORM_LOGDET),
        evaluate=_actnorm_by_code,
        domain={T.xa: Uniform(-3, 3), T.delta: LogUniform(1e-2, 1e2)},
        samples=12,
        description="ActNorm on a first batch of two values: both outputs and the log-determinant",
    )
)

# --------------------------------------------------------------------------- sigmoid / logit


def _sigmoid_by_code(points):
    from ..core.change_of_variables import Sigmoid

    value, logdet = Sigmoid().forward(points[T.x][:, None])
    return value[:, 0], logdet


def _sigmoid_round_trip_by_code(points):
    from ..core.change_of_variables import Sigmoid

    value, _ = Sigmoid().forward(points[T.x][:, None])
    back, inverse_logdet = Sigmoid().inverse(value)
    return -inverse_logdet + _ROUND_TRIP_WEIGHT * (back[:, 0] - points[T.x]) ** 2


def _logit_by_code(points):
    from ..core.change_of_variables import Logit, Sigmoid

    y = points[T.y][:, None]
    _, logdet = Logit().forward(y)
    _, inverse_logdet = Sigmoid().inverse(y)
    return -logdet, -inverse_logdet


register(
    Binding(
        derivation="D-flow-sigmoid-logdet",
        code=(f"{T._CODE}.Sigmoid",),
        expression=(T._sigmoid, T.SIGMOID_LOGDET),
        evaluate=_sigmoid_by_code,
        domain={T.x: Uniform(-40, 40, ends=True)},
        description="Sigmoid: value and log-det on |x| <= 40 (softplus computed stably)",
    )
)
register(
    Binding(
        derivation="D-flow-sigmoid-logdet",
        code=(f"{T._CODE}.Sigmoid",),
        expression=T.SIGMOID_LOGDET,
        evaluate=_sigmoid_round_trip_by_code,
        domain={T.x: Uniform(-8, 8)},
        description=(
            "minus Sigmoid's inverse log-det at its image, plus the round-trip error (|x| <= 8, "
            "where sigmoid(x) keeps the digits of 1 - sigmoid(x))"
        ),
    )
)
def _torch_transform_inverse_by_code(points):
    """Sigmoid seen as a torch Transform (`as_transform`), run backwards from y = sigmoid(x):
    the transform's inverse must give back x (compared through sigmoid(x)) and the
    log-determinant it remembers for the pair must be the forward one at x."""
    import torch

    from ..core.change_of_variables import Sigmoid, as_transform

    transform = as_transform(Sigmoid())
    y = torch.sigmoid(points[T.x])[:, None]
    x = transform.inv(y)
    return torch.sigmoid(x[:, 0]), transform.log_abs_det_jacobian(x, y)


register(
    Binding(
        derivation="D-flow-sigmoid-logdet",
        code=("genmath.core._flow.BijectionTransform._inverse",
              "genmath.core._flow.BijectionTransform.log_abs_det_jacobian"),
        expression=(T._sigmoid, T.SIGMOID_LOGDET),
        evaluate=_torch_transform_inverse_by_code,
        domain={T.x: Uniform(-8, 8)},
        description=(
            "as_transform(Sigmoid()).inv at sigmoid(x): the point's sigmoid and the remembered "
            "log-det (|x| <= 8)"
        ),
    )
)
register(
    Binding(
        derivation="D-flow-sigmoid-logdet",
        code=(f"{T._CODE}.Logit", f"{T._CODE}.Sigmoid"),
        expression=(T.LOGIT_MINUS_LOGDET, T.LOGIT_MINUS_LOGDET),
        evaluate=_logit_by_code,
        domain={T.y: Uniform(1e-6, 1 - 1e-6)},
        description="minus Logit's log-det, and minus Sigmoid's inverse log-det, on (0, 1)",
    )
)
