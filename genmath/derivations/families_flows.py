"""Derivations of the normalizing-flow families, bound to `genmath.families.flows`: the
log-determinant of Glow's 1×1 convolution and the rational-quadratic spline of neural spline
flows (forward, derivative and inverse, with the code's knot parameterisation). The flow
stacks (RealNVP, MAF, planar) are in `families_flow_models`; residual flows in
`families_residual`."""

import sympy as sp

from ._engine import NUMERIC, Binding, Check, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._registry import register

_FLOWS = "genmath.families.flows"


@sound_rewrite("sympy's cancel: each rational entry in lowest terms")
def _cancel(expr):
    """`sp.cancel` alone: the engine's first strategy, `expand`, does not close the spline's
    rational entries and costs as much as `cancel` does."""
    return sp.cancel(expr)

_TESTS = ("tests/families/test_flows.py",)

# ---------------------------------------------------------------- Glow 1x1 convolution

w11, w12, w21, w22 = sp.symbols("w_11 w_12 w_21 w_22", real=True)
_W = sp.Matrix([[w11, w12], [w21, w22]])
pixels = sp.symbols("x_1:7", real=True)  # C = 2 channels at h w = 3 pixels
_image = [sp.Matrix(pixels[2 * p : 2 * p + 2]) for p in range(3)]
_conv = sp.Matrix.vstack(*[_W * v for v in _image])
hw = sp.Symbol("hw", integer=True, positive=True)

register(
    Derivation(
        id="D-glow-conv1x1-logdet",
        title="Log-determinant of Glow's invertible 1×1 convolution",
        statement=(
            r"A 1×1 convolution with kernel $W \in \mathbb R^{C\times C}$ multiplies the channel "
            r"vector of each of the $h\,w$ pixels by $W$. Ordering the coordinates pixel by "
            r"pixel, its Jacobian is block diagonal with $h w$ copies of $W$, so "
            r"$\log|\det J| = h\,w\,\log|\det W|$ (Kingma & Dhariwal 2018), which the LU "
            r"parameterization evaluates in $O(C)$ (D-flow-lu-logdet). Checked for $C = 2$ "
            r"and $h w = 3$."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_conv.jacobian(pixels)))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(_W.det() ** 3)),
                reason=(
                    r"The Jacobian is $\operatorname{diag}(W, W, W)$; the determinant of a block "
                    r"diagonal matrix is the product of the blocks' determinants."
                ),
            ),
            Step(
                rhs=3 * sp.log(sp.Abs(_W.det())),
                reason=r"$\log|u^{3}| = 3\log|u|$ for $u = \det W \ne 0$.",
                tag=NUMERIC,
            ),
        ],
        symbols=(w11, w12, w21, w22),
        references=("kingma2018glow",),
        code=(f"{_FLOWS}.InvertibleConv1x1",),
        tests=_TESTS,
    )
)


def _glow_by_code(points):
    """The log-det of InvertibleConv1x1 on images with h w = 3 (1x3 and 3x1), forward and
    minus the inverse's."""
    import torch

    from ..families.flows import InvertibleConv1x1

    generator = torch.Generator().manual_seed(11)
    rows = []
    for i in range(len(points[w11])):
        kernel = torch.stack([points[w][i] for w in (w11, w12, w21, w22)]).reshape(2, 2)
        conv = InvertibleConv1x1.from_matrix(kernel)
        row = []
        for shape in ((2, 2, 1, 3), (1, 2, 3, 1)):
            image = torch.randn(shape, generator=generator, dtype=torch.float64)
            with torch.no_grad():
                y, logdet = conv(image)
                _, inverse_logdet = conv.inverse(y)
            row += [logdet[0], -inverse_logdet[-1]]
        rows.append(torch.stack(row))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-glow-conv1x1-logdet",
        code=(f"{_FLOWS}.InvertibleConv1x1",),
        expression=(3 * sp.log(sp.Abs(_W.det())),) * 4,
        evaluate=_glow_by_code,
        domain={w: Uniform(-3, 3) for w in (w11, w12, w21, w22)},
        samples=12,
        description="InvertibleConv1x1's log-det on 1x3 and 3x1 images, both directions",
    )
)


def _glow_conv_logdet() -> float:
    """Largest gap between InvertibleConv1x1's log-det and h w log|det W| on a 3x4x5 image."""
    import torch

    from ..families.flows import InvertibleConv1x1

    generator = torch.Generator().manual_seed(5)
    kernel = torch.randn(3, 3, generator=generator, dtype=torch.float64) * 1.7
    conv = InvertibleConv1x1.from_matrix(kernel)
    x = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        _, logdet = conv(x)
    expected = 4 * 5 * torch.linalg.slogdet(kernel).logabsdet
    return float((logdet - expected).abs().max())


register(
    Check(
        id="C-glow-conv1x1-logdet",
        title="InvertibleConv1x1 log-det equals h w log|det W|",
        function=_glow_conv_logdet,
        tolerance=1e-12,
        code=(f"{_FLOWS}.InvertibleConv1x1",),
        tests=("tests/families/test_flows.py",),
        derivation="D-glow-conv1x1-logdet",
    )
)


# ---------------------------------------------------------------- rational-quadratic spline

xi = sp.Symbol("xi", positive=True)
w_k, h_k, d_0, d_1 = sp.symbols("w_k h_k delta_k delta_k+1", positive=True)
x_k, y_k, dy = sp.symbols("x_k y_k Delta", real=True)
xs = sp.Symbol("x", real=True)
_slope = h_k / w_k
_bend = d_1 + d_0 - 2 * _slope
_rq = y_k + h_k * (_slope * xi**2 + d_0 * xi * (1 - xi)) / (_slope + _bend * xi * (1 - xi))
_rq_derivative = (
    _slope**2
    * (d_1 * xi**2 + 2 * _slope * xi * (1 - xi) + d_0 * (1 - xi) ** 2)
    / (_slope + _bend * xi * (1 - xi)) ** 2
)
_qa = h_k * (_slope - d_0) + dy * _bend
_qb = h_k * d_0 - dy * _bend
_qc = -_slope * dy
_root = (2 * _qc / (-_qb - sp.sqrt(_qb**2 - 4 * _qa * _qc))).subs(dy, _rq - y_k)

register(
    Derivation(
        id="D-rq-spline-derivative",
        title="Rational-quadratic spline: derivative, knot values and inverse",
        statement=(
            r"In bin $k$ of a monotone rational-quadratic spline (Gregory & Delbourgo 1982; "
            r"Durkan et al. 2019), with $\xi = (x - x_k)/w_k$, $s_k = h_k/w_k$ and knot "
            r"derivatives $\delta_k, \delta_{k+1} > 0$, "
            r"$g = y_k + h_k\,[s_k\xi^2 + \delta_k\xi(1-\xi)]/[s_k + (\delta_{k+1}+\delta_k-2s_k)\xi(1-\xi)]$. "
            r"Its derivative is the closed form below (positive, so $g$ is increasing); it "
            r"takes the values $y_k, y_k + h_k$ and slopes $\delta_k, \delta_{k+1}$ at the "
            r"bin's ends (so bins join $C^1$, and with $\delta = 1$ at $\pm B$ so do the identity "
            r"tails); and $g(\xi) = y_k + \Delta$ is the quadratic $a\xi^2 + b\xi + c = 0$ "
            r"whose root in $[0, 1]$ the inverse takes in the cancellation-free form "
            r"$\xi = 2c/(-b - \sqrt{b^2 - 4ac})$. The code's knots: bin widths "
            r"$2B\,(m + (1 - Km)\operatorname{softmax}(\theta^w))$, heights likewise, interior "
            r"derivatives $m + \operatorname{softplus}(\theta^\delta)$, $m = 10^{-3}$."
        ),
        start=sp.ImmutableMatrix(
            [
                _rq,
                sp.diff(_rq.subs(xi, (xs - x_k) / w_k), xs).subs(xs, x_k + xi * w_k),
                _rq.subs(xi, 0),
                _rq.subs(xi, 1),
                _rq_derivative.subs(xi, 0),
                _rq_derivative.subs(xi, 1),
                h_k * (_slope * xi**2 + d_0 * xi * (1 - xi)) - dy * (_slope + _bend * xi * (1 - xi)),
                _root,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        _rq,
                        _rq_derivative,
                        y_k,
                        y_k + h_k,
                        d_0,
                        d_1,
                        _qa * xi**2 + _qb * xi + _qc,
                        _root,
                    ]
                ),
                reason=(
                    r"The value $g(\xi)$ as defined (what the code's forward returns); the "
                    r"quotient rule in $\xi$ with $d\xi/dx = 1/w_k$; the values and slopes at "
                    r"$\xi = 0, 1$; and $g - y_k = \Delta$ multiplied by the denominator, a "
                    r"quadratic in $\xi$."
                ),
                method=_cancel,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [_rq, _rq_derivative, y_k, y_k + h_k, d_0, d_1, _qa * xi**2 + _qb * xi + _qc, xi]
                ),
                reason=(
                    r"At $\Delta = g(\xi) - y_k$ the stable root recovers $\xi$: the inverse "
                    "undoes the forward map (checked at random bins and positions)."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(xi, w_k, h_k, d_0, d_1, x_k, y_k, dy),
        references=("durkan2019neural", "gregory1982piecewise"),
        code=(f"{_FLOWS}.RationalQuadraticCoupling", f"{_FLOWS}.NSF"),
        tests=_TESTS,
        domain={xi: (0.001, 0.999)},
    )
)

# The bindings draw bin k of a K = 3 spline on [-B, B]: its position and size in units of B
# (u_0: the bins to its left, u_1: its own width; v the same for heights) and its two knot
# derivatives; the evaluation inverts the code's knot parameterisation (bin sizes
# 2B (m + (1 - Km) softmax(theta)), derivatives m + softplus(theta), m = 1e-3) to find the
# conditioner's raw outputs theta, and a conditioner returning its context hands them over.
_BINS, _MIN = 3, 1e-3
bound = sp.Symbol("B", positive=True)
u0, u1, v0, v1 = sp.symbols("u_0 u_1 v_0 v_1", positive=True)
_BIN_PLACES = {
    0: {x_k: -bound, w_k: bound * u1, y_k: -bound, h_k: bound * v1, d_0: 1},
    1: {x_k: -bound + bound * u0, w_k: bound * u1, y_k: -bound + bound * v0, h_k: bound * v1},
    2: {x_k: bound - bound * u1, w_k: bound * u1, y_k: bound - bound * v1, h_k: bound * v1, d_1: 1},
}


def _raw_outputs(points, i, index):
    """The conditioner outputs theta that make bin ``index`` the sampled one."""
    import torch

    def sizes(left, own):  # in units of B: the three bins' sizes, summing to 2
        if index == 0:
            parts = [own, (2 - own) / 2, (2 - own) / 2]
        elif index == 1:
            parts = [left, own, 2 - left - own]
        else:
            parts = [(2 - own) / 2, (2 - own) / 2, own]
        shares = (torch.stack(parts) / 2 - _MIN) / (1 - _BINS * _MIN)  # the softmax
        return shares.log()

    # the bins left of bin 1 change no value of the spline in it (only where it sits): when
    # the expressions do not sample u_0, any admissible value will do
    left = points[u0][i] if u0 in points else 0.37 * (2 - points[u1][i])
    widths = sizes(left if index == 1 else None, points[u1][i])
    heights = sizes(points[v0][i] if index == 1 else None, points[v1][i])
    slopes = [points[d][i] if d in points else torch.tensor(1.3, dtype=torch.float64) for d in (d_0, d_1)]
    if index == 0:
        slopes = [slopes[1], torch.tensor(0.8, dtype=torch.float64)]
    elif index == 2:
        slopes = [torch.tensor(0.8, dtype=torch.float64), slopes[0]]
    derivatives = torch.stack(slopes) - _MIN
    return torch.cat([widths, heights, derivatives.expm1().log()])


def _spline_by_code(index):
    def evaluate(points):
        import torch

        from ..families.flows import RationalQuadraticCoupling

        rows = []
        for i in range(len(points[bound])):
            raw = _raw_outputs(points, i, index)
            half = float(points[bound][i])
            coupling = RationalQuadraticCoupling(
                2, bins=_BINS, bound=half, hidden=(), context_features=len(raw)
            ).double()
            with torch.no_grad():  # the conditioner returns the context: its raw outputs
                layer = coupling.conditioner[0]
                layer.weight.zero_()
                layer.weight[:, 1:] = torch.eye(len(raw), dtype=torch.float64)
                layer.bias.zero_()
            own = float(points[u1][i]) * half
            if index == 0:
                left = -half
            elif index == 1:
                left = -half + float(torch.softmax(raw[:_BINS], 0)[0] * (1 - _BINS * _MIN) + _MIN) * 2 * half
            else:
                left = half - own
            width = own
            x = torch.tensor([[0.3, left + float(points[xi][i]) * width]], dtype=torch.float64)
            with torch.no_grad():
                y, logdet = coupling(x, raw[None])
                back, inverse_logdet = coupling.inverse(y, raw[None])
            rows.append(
                torch.stack(
                    [y[0, 1], logdet.exp()[0], (back[0, 1] - left) / width, (-inverse_logdet).exp()[0]]
                )
            )
        return tuple(torch.stack(rows).T)

    return evaluate


for _index, _place in _BIN_PLACES.items():
    _domain = {bound: LogUniform(0.5, 8), xi: Uniform(1e-3, 1 - 1e-3), u1: LogUniform(0.01, 0.9)}
    _domain[v1] = LogUniform(0.01, 0.9)
    if _index == 1:
        _domain.update({u0: LogUniform(0.01, 0.9), v0: LogUniform(0.01, 0.9)})
    for _slope_symbol in (d_0, d_1):
        if _slope_symbol not in _place:
            _domain[_slope_symbol] = LogUniform(0.01, 20)
    register(
        Binding(
            derivation="D-rq-spline-derivative",
            code=(f"{_FLOWS}.RationalQuadraticCoupling",),
            expression=(_rq, _rq_derivative, _root, _rq_derivative),
            where=_place,
            evaluate=_spline_by_code(_index),
            domain=_domain,
            samples=10,
            description=(
                f"RationalQuadraticCoupling in bin {_index} of 3: value, derivative (exp of the "
                "log-det), inverse position and inverse derivative"
            ),
        )
    )
