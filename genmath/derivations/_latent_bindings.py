"""Bindings of the latent-variable and autoregressive topic (`families_latent`): the families'
code evaluated in float64 at random points against the derivations' expressions.

* masked autoregressive models with one masked layer whose weights are the derivation's
  symbols, *and* nonzero weights where the ordering forbids a dependency (the masks must
  remove them, or the bound values move);
* autograd gradients of the straight-through losses (VQ-VAE, FSQ) against the derived ones;
* Lloyd's update and the EMA codebook on cells kept apart, so that each code's cell is known;
* the Gaussian autoregression against the joint Gaussian, for two orderings.
"""

from __future__ import annotations

import sympy as sp

from . import families_latent as T
from ._engine import Binding, Integers, LogUniform, Uniform
from ._registry import register

# --------------------------------------------------------------------------- MADE


def _forbidden(i, j):
    """A fixed nonzero weight for a dependency the ordering forbids (input j >= output i)."""
    return 0.3 + 0.11 * i - 0.07 * j


def _made_by_code(conditional, ordering):
    def evaluate(points):
        import torch

        from ..families.autoregressive import MADE

        made = MADE(3, (), ordering=ordering, conditional=conditional).double()
        order = list(ordering)
        groups = (
            [(T._means, (T.c1, T.c2, T.c3), {(2, 1): T.W21, (3, 1): T.W31, (3, 2): T.W32}),
             (T._log_stds, (T.d1, T.d2, T.d3), {(2, 1): T.V21, (3, 1): T.V31, (3, 2): T.V32})]
            if conditional == "gaussian"
            else [(T._logits, (T.e1, T.e2, T.e3), {(2, 1): T.U21, (3, 1): T.U31, (3, 2): T.U32})]
        )
        n = points[T.x1].shape[0]
        layer = made.network.net[0]
        with torch.no_grad():
            weight = layer.weight.new_zeros(n, *layer.weight.shape)
            bias = layer.bias.new_zeros(n, *layer.bias.shape)
            for g, (_, offsets, slopes) in enumerate(groups):
                for k in range(3):  # position k in the ordering is feature order[k]
                    row = g * 3 + order[k]
                    bias[:, row] = points[offsets[k]]
                    for m in range(3):
                        slope = slopes.get((k + 1, m + 1))
                        weight[:, row, order[m]] = (
                            points[slope] if slope is not None else _forbidden(k, m)
                        )
        x = torch.zeros(n, 3, dtype=torch.float64)
        for k, symbol in enumerate(T._xs):
            x[:, order[k]] = points[symbol]
        out = []
        for j in range(n):  # one set of weights per point
            with torch.no_grad():
                layer.weight.copy_(weight[j])
                layer.bias.copy_(bias[j])
            out.append(made.log_prob(x[j : j + 1]))
        return torch.cat(out)

    return evaluate


_made_domain = {
    **{s: Uniform(-2, 2) for s in (T.c1, T.c2, T.c3, T.W21, T.W31, T.W32, T.e1, T.e2, T.e3)},
    **{s: Uniform(-2, 2) for s in (T.U21, T.U31, T.U32)},
    **{s: Uniform(-1, 1) for s in (T.d1, T.d2, T.d3, T.V21, T.V31, T.V32)},
    **{s: Uniform(-3, 3) for s in T._xs},
}
for _conditional, _expression in (("gaussian", T.GAUSSIAN_CHAIN), ("bernoulli", T.BERNOULLI_CHAIN)):
    for _ordering in ((0, 1, 2), (2, 0, 1)):
        _domain = {s: _made_domain[s] for s in sp.sympify(_expression).free_symbols}
        if _conditional == "bernoulli":
            _domain.update({s: Integers(0, 1) for s in T._xs})
        register(
            Binding(
                derivation="D-chain-rule-nll",
                code=("genmath.families.autoregressive.MADE.log_prob",),
                expression=_expression,
                evaluate=_made_by_code(_conditional, _ordering),
                domain=_domain,
                samples=12,
                description=(
                    f"MADE({_conditional}) with one masked layer, ordering {list(_ordering)}: "
                    "log_prob, the forbidden weights nonzero"
                ),
            )
        )

# --------------------------------------------------------------------------- straight-through


def _straight_through_by_code(points):
    import torch

    from ..families.tokenizer import straight_through

    z = (points[T.q] * 0 + 0.37).requires_grad_(True)  # any encoder output: st's value is q
    q = points[T.q].clone().requires_grad_(True)
    loss = (points[T.x_target] - straight_through(z, q)) ** 2
    dz, dq = torch.autograd.grad(loss.sum(), [z, q], allow_unused=True)
    # q must get no gradient: added to z's, a leak would show
    return loss.detach(), dz + (dq if dq is not None else 0.0)


def _vq_by_code(beta):
    def evaluate(points):
        import torch

        from ..families.tokenizer import VectorQuantizer

        n = points[T.z].shape[0]
        # point j's code lives 100 j away from the others, so it is its nearest; every
        # expression below depends on x - e and z - e only
        shift = 100.0 * torch.arange(n, dtype=torch.float64)
        vq = VectorQuantizer(n, 1, beta=beta).double()
        with torch.no_grad():
            vq.codebook.copy_((points[T.e] + shift)[:, None])
        z = (points[T.z] + shift)[:, None].requires_grad_(True)
        out = vq(z)
        loss = ((points[T.x_target] + shift) - out.quantized[:, 0]) ** 2 + out.loss
        dz, dcode = torch.autograd.grad(loss.sum(), [z, vq.codebook])
        return loss.detach(), dz[:, 0], dcode[:, 0]

    return evaluate


def _fsq_by_code(eps):
    def evaluate(points):
        import torch

        from ..families.tokenizer import FSQ

        rows = []
        n = points[T.z].shape[0]
        for start in range(0, n, 4):  # examples of up to four coordinates, a level each
            part = slice(start, min(start + 4, n))
            fsq = FSQ([int(v) for v in points[_levels][part]], eps=eps).double()
            z = points[T.z][None, part].clone().requires_grad_(True)
            out = fsq(z)
            loss = (points[T.x_target][None, part] - out.quantized) ** 2
            (gradient,) = torch.autograd.grad(loss.sum(), z)
            rows.append(torch.stack([loss.detach()[0], gradient[0], fsq.bound(z).detach()[0]]))
        return tuple(torch.cat(rows, 1))

    return evaluate


_levels = sp.Symbol("L", integer=True, positive=True)
_h_of_levels = (_levels - 1) / sp.Integer(2)
_st = list(T.STRAIGHT_THROUGH)
register(
    Binding(
        derivation="D-straight-through",
        code=("genmath.families.tokenizer.straight_through",),
        expression=(_st[0], _st[1]),
        evaluate=_straight_through_by_code,
        domain={T.q: Uniform(-4, 4), T.x_target: Uniform(-4, 4)},
        description=(
            "straight_through: the value of (x - st(z, q))^2 and its autograd gradient in z, "
            "plus that in q (zero)"
        ),
    )
)
for _beta in (0.25, 1.7):
    register(
        Binding(
            derivation="D-straight-through",
            code=("genmath.families.tokenizer.VectorQuantizer.forward",),
            expression=(_st[2], _st[3], _st[4]),
            where={T.beta: sp.nsimplify(_beta)},
            evaluate=_vq_by_code(_beta),
            domain={T.z: Uniform(-3, 3), T.e: Uniform(-3, 3), T.x_target: Uniform(-3, 3)},
            samples=16,
            description=(
                f"VectorQuantizer(beta={_beta}): decoder + codebook + commitment loss, and its "
                "autograd gradients in the encoder output and in the code"
            ),
        )
    )
for _eps in (1e-3, 0.2):
    _hL = _h_of_levels
    register(
        Binding(
            derivation="D-straight-through",
            code=("genmath.families.tokenizer.FSQ.forward", "genmath.families.tokenizer.FSQ.bound"),
            expression=(_st[5], _st[6], T._bound),
            where={
                T.half_range: _hL,
                T.fsq_eps: sp.nsimplify(_eps),
                T.rounded: sp.floor((1 - sp.nsimplify(_eps)) * _hL * sp.tanh(T.z) + _hL + sp.Rational(1, 2))
                - _hL,
            },
            evaluate=_fsq_by_code(_eps),
            domain={T.z: Uniform(-3, 3), T.x_target: Uniform(-2, 2), _levels: Integers(2, 9)},
            samples=24,
            description=f"FSQ(eps={_eps}): the loss at the rounded code, its autograd gradient, the bound",
        )
    )

# --------------------------------------------------------------------------- Lloyd


def _lloyd_by_code(points):
    import torch

    from ..families.tokenizer import lloyd_step

    n = points[T.y1].shape[0]
    shift = 100.0 * torch.arange(n, dtype=torch.float64)  # cell j around 100 j
    cells = torch.stack([points[T.y1], points[T.y2], points[T.y3]], 1) + shift[:, None]
    codebook = (shift + 0.5)[:, None]
    return lloyd_step(codebook, cells.reshape(-1, 1))[:, 0] - shift


def _ema_by_code(points):
    import torch

    from ..families.tokenizer import VectorQuantizer

    y = sp.symbols("y_4 y_5", real=True)
    out_first, out_second = [], []
    for j in range(points[T.y1].shape[0]):
        vq = VectorQuantizer(2, 1, ema=True, decay=float(points[T.gamma][j])).double()
        with torch.no_grad():
            vq.codebook.copy_(torch.tensor([[0.0], [1000.0]], dtype=torch.float64))
        vq(torch.stack([points[T.y1][j], points[T.y2][j], points[T.y3][j]])[:, None])
        out_first.append(vq.codebook[0, 0].clone())
        vq(torch.stack([points[y[0]][j], points[y[1]][j]])[:, None])
        out_second.append(vq.codebook[0, 0].clone())
    return torch.stack(out_first), torch.stack(out_second)


_cell = Uniform(-3, 3)
register(
    Binding(
        derivation="D-lloyd-step",
        code=("genmath.families.tokenizer.lloyd_step",),
        expression=T.CELL_MEAN,
        evaluate=_lloyd_by_code,
        domain={T.y1: _cell, T.y2: _cell, T.y3: _cell},
        description="lloyd_step: each code moves to the mean of its cell of three points",
    )
)
_y4, _y5 = sp.symbols("y_4 y_5", real=True)
register(
    Binding(
        derivation="D-lloyd-step",
        code=("genmath.families.tokenizer.VectorQuantizer._ema_update",),
        expression=(T.s_1 / T.n_1, T.EMA_CODE),
        where={T.n_1: 3, T.n_2: 2, T.s_1: T.y1 + T.y2 + T.y3, T.s_2: _y4 + _y5},
        evaluate=_ema_by_code,
        domain={T.y1: _cell, T.y2: _cell, T.y3: _cell, _y4: _cell, _y5: _cell, T.gamma: Uniform(0, 0.99)},
        samples=12,
        description="VectorQuantizer(ema=True): the code after one and after two moving-average updates",
    )
)


def _lloyd_max_by_code(points):
    import torch

    from ..families.tokenizer import lloyd_step

    n = 20000
    x = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)[:, None]
    codebook = torch.tensor([[-0.5], [0.5]], dtype=torch.float64)
    return lloyd_step(codebook, x)[1, 0]


register(
    Binding(
        derivation="D-lloyd-max-gaussian",
        code=("genmath.families.tokenizer.lloyd_step",),
        expression=T._c_star,
        evaluate=_lloyd_max_by_code,
        samples=2,
        tolerance=2e-5,
        description=(
            "lloyd_step from the codes -+1/2 on 20000 midpoint quantiles of N(0, 1): the "
            "centroid sqrt(2/pi), to the quadrature's O(1/n)"
        ),
    )
)

# --------------------------------------------------------------------------- Gaussian AR

_L_symbols = (T.a11, T.a21, T.a22, T.a31, T.a32, T.a33)
_gar_domain = {
    T.a11: LogUniform(0.1, 5),
    T.a22: LogUniform(0.1, 5),
    T.a33: LogUniform(0.1, 5),
    T.a21: Uniform(-3, 3),
    T.a31: Uniform(-3, 3),
    T.a32: Uniform(-3, 3),
    **{s: Uniform(-3, 3) for s in (T.x1, T.x2, T.x3)},
}


def _gaussian_ar_by_code(which, ordering=None):
    def evaluate(points):
        import torch

        from ..analytic import Gaussian
        from ..families.autoregressive import GaussianAutoregression

        n = points[T.x1].shape[0]
        zero = torch.zeros(n, dtype=torch.float64)
        L = torch.stack(
            [
                torch.stack([points[T.a11], zero, zero], -1),
                torch.stack([points[T.a21], points[T.a22], zero], -1),
                torch.stack([points[T.a31], points[T.a32], points[T.a33]], -1),
            ],
            1,
        )
        cov = L @ L.mT
        x = torch.stack([points[T.x1], points[T.x2], points[T.x3]], -1)
        mean = torch.zeros(3, dtype=torch.float64)
        out = []
        for j in range(n):
            model = (
                Gaussian(mean, cov[j])
                if which == "joint"
                else GaussianAutoregression(mean, cov[j], ordering)
            )
            out.append(model.log_prob(x[j : j + 1]))
        return torch.cat(out)

    return evaluate


for _expression, _which, _ordering, _code, _what in (
    (T._joint(T._L3, [T.x1, T.x2, T.x3]), "joint", None, "genmath.analytic.Gaussian.log_prob",
     "the joint N(0, L L^T) by genmath.analytic.Gaussian"),
    (T._chain(T._L3, [T.x1, T.x2, T.x3]), "chain", None,
     "genmath.families.autoregressive.GaussianAutoregression.log_prob",
     "GaussianAutoregression.log_prob in the natural order: the chain of conditionals"),
    (T._joint(T._L3, [T.x1, T.x2, T.x3]), "chain", [2, 0, 1],
     "genmath.families.autoregressive.GaussianAutoregression.log_prob",
     "GaussianAutoregression.log_prob in the order (2, 0, 1) is the same joint"),
):
    register(
        Binding(
            derivation="D-gaussian-autoregression",
            code=(_code,),
            expression=_expression,
            evaluate=_gaussian_ar_by_code(_which, _ordering),
            domain=_gar_domain,
            samples=12,
            description=_what,
        )
    )

# --------------------------------------------------------------------------- PixelCNN

_w0, _w1, _b0, _b1, _tap1, _tap2 = sp.symbols("omega_0 omega_1 beta_0 beta_1 W_1 W_2", real=True)
_INPUT_BIAS = 10.0  # keeps the hidden pre-activation positive: the ReLU acts as the identity
_slope, _offset = _w1 - _w0, _b1 - _b0  # the Bernoulli logit is the difference of two logits
_hidden = {1: _INPUT_BIAS, 2: _INPUT_BIAS - _tap1, 3: _INPUT_BIAS - _tap1 - _tap2}
_pixelcnn_where = {
    T.e1: _slope * _hidden[1] + _offset,
    T.e2: _slope * _hidden[2] + _offset,
    T.e3: _slope * _hidden[3] + _offset,
    T.U21: 2 * _slope * _tap1,
    T.U32: 2 * _slope * _tap1,
    T.U31: 2 * _slope * _tap2,
}


def _pixelcnn_by_code(points):
    """A PixelCNN on 1 x 3 binary images: a type-A 5 x 5 masked convolution to one channel
    (its two left taps the points' W_1, W_2, every tap the mask forbids nonzero), a ReLU kept
    linear by its bias, and a type-B 1 x 1 convolution to the two logits."""
    import torch

    from ..families.autoregressive import PixelCNN

    net = PixelCNN(channels=1, categories=2, hidden=1, layers=0, kernel_size=5).double()
    n = points[T.x1].shape[0]
    x = torch.stack([points[s] for s in T._xs], -1).long().reshape(n, 1, 1, 3)
    out = []
    for j in range(n):
        with torch.no_grad():
            kernel = torch.linspace(-0.9, 0.8, 25, dtype=torch.float64).reshape(5, 5)  # forbidden
            kernel[2, 1], kernel[2, 0] = points[_tap1][j], points[_tap2][j]
            net.input.weight.copy_(kernel[None, None])
            net.input.bias.fill_(_INPUT_BIAS)
            net.output.weight.copy_(torch.stack([points[_w0][j], points[_w1][j]]).reshape(2, 1, 1, 1))
            net.output.bias.copy_(torch.stack([points[_b0][j], points[_b1][j]]))
        out.append(net.log_prob(x[j : j + 1]))
    return torch.cat(out)


register(
    Binding(
        derivation="D-chain-rule-nll",
        code=(
            "genmath.families.autoregressive.PixelCNN.log_prob",
            "genmath.families.autoregressive.MaskedConv2d.forward",
        ),
        expression=T.BERNOULLI_CHAIN,
        where=_pixelcnn_where,
        evaluate=_pixelcnn_by_code,
        domain={
            **{s: Integers(0, 1) for s in T._xs},
            **{s: Uniform(-1.5, 1.5) for s in (_tap1, _tap2, _w0, _w1)},
            **{s: Uniform(-2, 2) for s in (_b0, _b1)},
        },
        samples=12,
        description=(
            "PixelCNN on 1 x 3 binary images, masked taps nonzero: log_prob is the chain of "
            "Bernoulli conditionals with weight-shared logits"
        ),
    )
)

# --------------------------------------------------------------------------- VQ-VAE


def _vqvae_by_code(points):
    """VQVAE with a Gaussian decoder of variance 1/2 (its NLL is (x - st)^2 + log(pi)/2), a
    second data coordinate of log-likelihood 0, a second latent coordinate shared by the codes
    and the encoder, and an encoder whose output is a parameter: the loss and its gradients in
    z and in the code."""
    import math

    import torch

    from ..families.tokenizer import VQVAE, VectorQuantizer

    n = points[T.z].shape[0]
    shift = 100.0 * torch.arange(n, dtype=torch.float64)
    # a second latent coordinate on which every code and the encoder agree (c): it moves no
    # distance and adds 0 to every squared error, so those are sums over two coordinates
    c = torch.linspace(-0.5, 0.5, n, dtype=torch.float64)
    quantizer = VectorQuantizer(n, 2, beta=0.25).double()
    with torch.no_grad():
        quantizer.codebook.copy_(torch.stack([points[T.e] + shift, c], 1))

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z = torch.nn.Parameter(torch.stack([points[T.z] + shift, c], 1).clone())

        def forward(self, data):
            return self.z

    # a second data coordinate decoded at its own value with scale 1/sqrt(2 pi): its
    # log-likelihood is exactly 0, so the event is summed over two terms (a mean halves it)
    second = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)[:, None]
    scale = torch.tensor([[math.sqrt(0.5), 1 / math.sqrt(2 * math.pi)]], dtype=torch.float64)

    def decoder(code):
        loc = torch.cat([code[:, :1], second], 1)
        return torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)

    model = VQVAE(Encoder(), quantizer, decoder)
    data = torch.cat([(points[T.x_target] + shift)[:, None], second], 1)
    loss = model(data).loss - 0.5 * math.log(math.pi)
    dz, dcode = torch.autograd.grad(loss.sum(), [model.encoder.z, quantizer.codebook])
    return loss.detach(), dz[:, 0], dcode[:, 0]


register(
    Binding(
        derivation="D-straight-through",
        code=("genmath.families.tokenizer.VQVAE.forward",),
        expression=(_st[2], _st[3], _st[4]),
        where={T.beta: sp.Rational(1, 4)},
        evaluate=_vqvae_by_code,
        domain={T.z: Uniform(-3, 3), T.e: Uniform(-3, 3), T.x_target: Uniform(-3, 3)},
        samples=12,
        description="VQVAE(beta=0.25): the per-example loss and its gradients in z and in the code",
    )
)


# --------------------------------------------------------------------------- codebook perplexity


def _perplexity_by_code(points):
    """VectorQuantizer's perplexity when m_1, m_2, m_3 positions sit by codes 0, 1, 2 and none
    by code 3 (the codes far apart, so each position's code is known)."""
    import torch

    from ..families.tokenizer import VectorQuantizer

    quantizer = VectorQuantizer(4, 1).double()
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0], [10.0], [20.0], [30.0]]))
    out = []
    for j in range(len(points[T.m_1])):
        counts = [int(points[m][j]) for m in (T.m_1, T.m_2, T.m_3)]
        z = torch.cat([torch.full((c, 1), 10.0 * k + 0.1, dtype=torch.float64) for k, c in enumerate(counts)])
        out.append(quantizer(z[None]).perplexity)
    return torch.stack(out)


register(
    Binding(
        derivation="D-codebook-perplexity",
        code=("genmath.families.tokenizer.VectorQuantizer",),
        expression=T.PERPLEXITY,
        evaluate=_perplexity_by_code,
        domain={T.m_1: Integers(1, 7), T.m_2: Integers(1, 7), T.m_3: Integers(1, 7)},
        samples=12,
        description="VectorQuantizer's perplexity with m_k positions at codes 0-2 and code 3 unused",
    )
)
