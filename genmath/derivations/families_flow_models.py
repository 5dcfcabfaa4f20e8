"""The normalizing-flow models of `genmath.families.flows` as densities: RealNVP, MAF and the
planar flow, each a stack of core bijections read through the change of variables with a
standard-normal base.

Each derivation writes a two-layer model on $\\mathbb R^2$ with affine conditioners (the
``hidden=()`` networks of the code) as an explicit map, and shows that the change of
variables with the map's full Jacobian (sympy's, of the composite map) equals what the
model adds up: the base log-density at the image plus each layer's log-determinant
(D-flow-coupling-logdet, D-flow-maf-logdet, D-flow-planar give a layer's; the chain rule,
$\\det(J_2J_1) = \\det J_2\\det J_1$, stacks them). The bindings set the models' parameters to
the sampled values and compare their `log_prob` with it, so the masks' alternation, the
orderings, the conditioners' output layout and the direction of each layer are all held.
"""

import sympy as sp

from ._engine import NUMERIC, Binding, Derivation, Step, Uniform
from ._gaussian import log_normal
from ._registry import register

_FLOWS = "genmath.families.flows"
_TESTS = ("tests/families/test_flows.py",)

x1, x2 = sp.symbols("x_1 x_2", real=True)
_PARAMETER = Uniform(-1, 1)
_POSITION = Uniform(-2, 2)


def _base(z):
    return log_normal(z[0], 0, 1) + log_normal(z[1], 0, 1)


def _det2(matrix):
    """A 2x2 determinant as written (sympy's ``det`` simplifies, which takes minutes on the
    planar stack)."""
    return matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]


def _change_of_variables(z_of_x):
    jacobian = sp.Matrix(z_of_x).jacobian([x1, x2])
    return _base(z_of_x) + sp.log(sp.Abs(_det2(jacobian)))


def _parameters(prefix, count):
    return sp.symbols(f"{prefix}_1:{count + 1}", real=True)


def _set(layer, weight, bias):
    import torch

    with torch.no_grad():
        layer.weight.copy_(torch.stack(weight).reshape(layer.weight.shape))
        layer.bias.copy_(torch.stack(bias))


def _log_prob_by_code(build, parameters):
    """``build(values) -> model`` with the sampled parameter values; its log_prob at x."""

    def evaluate(points):
        import torch

        values = []
        for i in range(len(points[x1])):
            model = build([points[p][i] for p in parameters])
            x = torch.stack([points[x1][i], points[x2][i]])[None]
            with torch.no_grad():
                values.append(model.log_prob(x)[0])
        return torch.stack(values)

    return evaluate


# --------------------------------------------------------------------------- RealNVP

# layer l: shift t_l = a_l c + b_l and log-scale s_l = g_l c + e_l of its conditioning coordinate c
_nvp = _parameters("r", 8)
a1, b1, g1, e1, a2, b2, g2, e2 = _nvp
_s1 = g1 * x1 + e1  # layer 1 (mask parity 0): x_1 conditions, x_2 is transformed
_y2 = x2 * sp.exp(_s1) + a1 * x1 + b1
_s2 = g2 * _y2 + e2  # layer 2 (parity 1): y_2 conditions, y_1 = x_1 is transformed
_z_nvp = (x1 * sp.exp(_s2) + a2 * _y2 + b2, _y2)
_nvp_log_prob = _base(_z_nvp) + _s1 + _s2

register(
    Derivation(
        id="D-realnvp-log-prob",
        title="RealNVP: the density of two alternating affine couplings",
        statement=(
            r"`RealNVP(2, layers=2)` maps data to noise by $y = (x_1,\ x_2 e^{s_1(x_1)} + "
            r"t_1(x_1))$ then $z = (y_1 e^{s_2(y_2)} + t_2(y_2),\ y_2)$ (checkerboard masks of "
            r"alternating parity), so $\log p(x) = \log\mathcal N(z; 0, I) + s_1(x_1) + "
            r"s_2(y_2)$: each layer's log-determinant is its log-scale (D-flow-coupling-logdet), "
            r"and the two add by the chain rule. Shown with affine conditioners "
            r"$(t, s) = (a c + b,\ g c + e)$ of the conditioning coordinate $c$ (Dinh et al. 2017)."
        ),
        start=_change_of_variables(_z_nvp),
        steps=[
            Step(
                rhs=_nvp_log_prob,
                reason=(
                    r"The composite's Jacobian determinant is $e^{s_1}e^{s_2}$: each coupling's "
                    "Jacobian is triangular after reordering, and determinants multiply."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(x1, x2, *_nvp),
        references=("dinh2017density", "papamakarios2021normalizing"),
        code=(f"{_FLOWS}.RealNVP",),
        tests=_TESTS,
    )
)


def _realnvp(values):
    import torch

    from ..families.flows import RealNVP

    model = RealNVP(2, layers=2, hidden=()).double()
    couplings = [block for block in model.transform.bijections]
    for coupling, (a, b, g, e) in zip(couplings, (values[:4], values[4:]), strict=True):
        # the conditioner's outputs are (shift, log-scale)
        _set(coupling.conditioner[0], [a, g], [b, e])
    return model.to(torch.float64)


register(
    Binding(
        derivation="D-realnvp-log-prob",
        code=(f"{_FLOWS}.RealNVP",),
        expression=_nvp_log_prob,
        evaluate=_log_prob_by_code(_realnvp, _nvp),
        domain={x1: _POSITION, x2: _POSITION, **{p: _PARAMETER for p in _nvp}},
        samples=16,
        description="RealNVP(2, layers=2, hidden=()).log_prob with sampled conditioners",
    )
)

# --------------------------------------------------------------------------- MAF

# layer 1, natural order: (t, s) of x_1 are constants, of x_2 affine in x_1;
# layer 2, reversed order: (t, s) of the second coordinate are constants, of the first affine in it
_maf = _parameters("m", 12)
(t1c, s1c, at2, bt2, as2, bs2, t2c, s2c, at1, bt1, as1, bs1) = _maf
_u1 = x1 * sp.exp(s1c) + t1c
_u2 = x2 * sp.exp(as2 * x1 + bs2) + at2 * x1 + bt2
_w2 = _u2 * sp.exp(s2c) + t2c
_w1 = _u1 * sp.exp(as1 * _u2 + bs1) + at1 * _u2 + bt1
_z_maf = (_w1, _w2)
_maf_log_prob = _base(_z_maf) + s1c + (as2 * x1 + bs2) + s2c + (as1 * _u2 + bs1)

register(
    Derivation(
        id="D-maf-log-prob",
        title="MAF: the density of two masked autoregressive layers with alternating orderings",
        statement=(
            r"`MAF(2, layers=2)` maps data to noise by a masked autoregressive layer in the "
            r"natural order, $u_i = x_i e^{s_i(x_{<i})} + t_i(x_{<i})$, then one in the reversed "
            r"order, so $\log p(x) = \log\mathcal N(z; 0, I) + \sum_i s_i + \sum_i s'_i$, every "
            r"log-scale read in one pass of its layer's masked network (D-flow-maf-logdet; "
            r"Papamakarios et al. 2017). Shown with affine masked networks (`hidden=()`), whose "
            "first coordinate in each ordering gets constant parameters."
        ),
        start=_change_of_variables(_z_maf),
        steps=[
            Step(
                rhs=_maf_log_prob,
                reason=(
                    "Each layer's Jacobian is triangular in its ordering with diagonal "
                    r"$e^{s_i}$; determinants multiply along the stack."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(x1, x2, *_maf),
        references=("papamakarios2017masked", "germain2015made"),
        code=(f"{_FLOWS}.MAF",),
        tests=_TESTS,
    )
)


def _maf_model(values):
    import torch

    from ..families.flows import MAF

    model = MAF(2, layers=2, hidden=()).double()
    zero = torch.zeros((), dtype=torch.float64)
    first, second = (layer.network.net[0] for layer in model.transform.bijections)
    t1, s1, at2, bt2, as2, bs2, t2, s2, at1_, bt1_, as1_, bs1_ = values
    # outputs (shift_1, shift_2, log-scale_1, log-scale_2), inputs (x_1, x_2); the masks keep
    # only the autoregressive entries (natural order: feature 2 reads feature 1)
    _set(first, [zero, zero, at2, zero, zero, zero, as2, zero], [t1, bt2, s1, bs2])
    # reversed order: feature 1 reads feature 2
    _set(second, [zero, at1_, zero, zero, zero, as1_, zero, zero], [bt1_, t2, bs1_, s2])
    return model


register(
    Binding(
        derivation="D-maf-log-prob",
        code=(f"{_FLOWS}.MAF",),
        expression=_maf_log_prob,
        evaluate=_log_prob_by_code(_maf_model, _maf),
        domain={x1: _POSITION, x2: _POSITION, **{p: _PARAMETER for p in _maf}},
        samples=16,
        description="MAF(2, layers=2, hidden=()).log_prob with sampled masked networks",
    )
)

# --------------------------------------------------------------------------- planar

z1, z2 = sp.symbols("z_1 z_2", real=True)
_planar = _parameters("p", 10)  # (u_1, u_2, w_1, w_2, b) per layer


def _planar_layer(point, params):
    u = sp.Matrix(params[0:2])
    w = sp.Matrix(params[2:4])
    bias = params[4]
    wu = (w.T * u)[0]
    u_hat = u + (sp.log(1 + sp.exp(wu)) - 1 - wu) * w / (w.T * w)[0]
    pre = (w.T * point)[0] + bias
    image = point + u_hat * sp.tanh(pre)
    log_det = sp.log(sp.Abs(1 + (1 - sp.tanh(pre) ** 2) * (w.T * u_hat)[0]))
    return image, log_det


def _planar_stack(point):
    middle, first = _planar_layer(point, _planar[:5])
    image, second = _planar_layer(middle, _planar[5:])
    return image, first + second


_image_of_x, _log_det_x = _planar_stack(sp.Matrix([x1, x2]))
_image_of_z, _log_det_z = _planar_stack(sp.Matrix([z1, z2]))
_x_of_z = sp.Matrix(_image_of_z)
_density_explicit = _base(_image_of_x) + _log_det_x
_sample_explicit = _base((z1, z2)) - _log_det_z

register(
    Derivation(
        id="D-planar-flow-log-prob",
        title="Planar flow: the density of two planar layers, on data or on base samples",
        statement=(
            r"With `explicit='density'` the planar maps $f = f_2 \circ f_1$, "
            r"$f_l(v) = v + \hat u_l\tanh(w_l^\top v + b_l)$, act on data and "
            r"$\log p(x) = \log\mathcal N(f(x); 0, I) + \sum_l \log|1 + \tanh'(\cdot)\,w_l^\top\hat "
            r"u_l|$ (D-flow-planar); with `explicit='sample'` (the paper's direction) they act "
            r"on base samples, $x = f(z)$, and $\log p(x) = \log\mathcal N(z; 0, I) - \sum_l "
            r"\log|1 + \tanh'(\cdot)\,w_l^\top\hat u_l|$, where `log_prob` finds $z$ by Newton's "
            r"method. Rezende & Mohamed 2015; $\hat u$ keeps $w^\top\hat u > -1$."
        ),
        start=sp.ImmutableMatrix(
            [
                _change_of_variables(tuple(_image_of_x)),
                _base((z1, z2)) - sp.log(sp.Abs(_det2(_x_of_z.jacobian([z1, z2])))),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_density_explicit, _sample_explicit]),
                reason=(
                    r"Each layer's Jacobian is $I + \hat u\,\psi^\top$ with determinant "
                    r"$1 + \psi^\top\hat u$ (the matrix determinant lemma); the stack multiplies "
                    r"them. In the sampling direction the density of $x = f(z)$ divides by "
                    r"$|\det \partial f/\partial z|$."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(x1, x2, z1, z2, *_planar),
        references=("rezende2015variational",),
        code=(f"{_FLOWS}.PlanarFlow",),
        tests=_TESTS,
    )
)


def _planar_model(values, explicit):
    import torch

    from ..families.flows import PlanarFlow

    model = PlanarFlow(2, layers=2, explicit=explicit).double()
    stack = model.transform.bijection if explicit == "sample" else model.transform
    with torch.no_grad():
        for layer, params in zip(stack.bijections, (values[:5], values[5:]), strict=True):
            layer.u.copy_(torch.stack(params[0:2]))
            layer.w.copy_(torch.stack(params[2:4]))
            layer.b.copy_(params[4])
    return model


def _planar_density_by_code(points):
    return _log_prob_by_code(lambda v: _planar_model(v, "density"), _planar)(points)


def _planar_samples_by_code(points):
    """log_prob at x = f(z), the sample-direction image of z (Newton inverts it back)."""
    import torch

    values = []
    for i in range(len(points[z1])):
        model = _planar_model([points[p][i] for p in _planar], "sample")
        z = torch.stack([points[z1][i], points[z2][i]])[None]
        with torch.no_grad():
            x, _ = model.transform.inverse(z)
            values.append(model.log_prob(x)[0])
    return torch.stack(values)


_planar_domain = {p: Uniform(-1.5, 1.5) for p in _planar}
register(
    Binding(
        derivation="D-planar-flow-log-prob",
        code=(f"{_FLOWS}.PlanarFlow",),
        expression=_density_explicit,
        evaluate=_planar_density_by_code,
        domain={x1: _POSITION, x2: _POSITION, **_planar_domain},
        samples=12,
        description="PlanarFlow(explicit='density').log_prob: the planar maps act on data",
    )
)
register(
    Binding(
        derivation="D-planar-flow-log-prob",
        code=(f"{_FLOWS}.PlanarFlow",),
        expression=_sample_explicit,
        evaluate=_planar_samples_by_code,
        domain={z1: _POSITION, z2: _POSITION, **_planar_domain},
        samples=12,
        description="PlanarFlow(explicit='sample').log_prob at the image of z (Newton inverse)",
    )
)
