r"""Discrete tokenizers: vector quantization (VQ-VAE) and finite scalar quantization (FSQ).

A tokenizer maps an encoder output $z_e$ to a code from a finite set, and passes gradients
through the non-differentiable rounding with the **straight-through** estimator

$$
\operatorname{st}(z_e, q) = z_e + \operatorname{sg}[q - z_e], \qquad
\operatorname{st} = q \ \text{(forward)}, \qquad
\frac{\partial\, \operatorname{st}}{\partial z_e} = I \ \text{(backward)},
$$

with $\operatorname{sg}$ the stop-gradient (derivation D-straight-through). The vector
quantizer's codebook is fitted by the codebook loss or by exponential moving averages; both
are stochastic versions of Lloyd's algorithm, whose optimum for $\mathcal N(0, 1)$ with two
codes is $\pm\sqrt{2/\pi}$ (derivation D-lloyd-max-gaussian).

Shapes: the code dimension is the **last** axis, ``z`` has shape ``(B, *positions, dim)``
(for a convolutional feature map ``(B, C, H, W)``, move channels last first).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import distributions as D
from torch import nn

from .._implements import implements, plumbing
from ..core._shapes import check_batch, check_like
from ..core._validate import (
    InputTypeError,
    check_dtype,
    check_finite,
    check_generator,
    in_unit_interval,
    module_dtype,
    non_negative,
    positive_int,
)
from .vae import _check_reconstruction

__all__ = [
    "Quantized",
    "straight_through",
    "nearest_code",
    "lloyd_step",
    "VectorQuantizer",
    "FSQ",
    "VQVAE",
]


@dataclasses.dataclass
class Quantized:
    r"""The output of a quantizer for ``z`` of shape ``(B, *positions, dim)``.

    Attributes:
        quantized: the straight-through value: equals ``codes`` in the forward pass, with
            the identity gradient w.r.t. ``z`` (D-straight-through). Shape of ``z``.
        codes: the selected code vectors themselves (gradient to the codebook only).
        indices: integer code index per position, shape ``(B, *positions)``.
        codebook_loss: $\sum_{\text{positions}} \|\operatorname{sg}[z] - e\|^2$ per example,
            shape ``(B,)`` (zero when the codebook is not trained by gradient).
        commitment_loss: $\sum_{\text{positions}} \|z - \operatorname{sg}[e]\|^2$, ``(B,)``.
        loss: ``codebook_loss + beta * commitment_loss``, shape ``(B,)``.
        usage: fraction of positions assigned to each code, shape ``(codebook_size,)``.
        perplexity: $\exp(-\sum_i u_i \log u_i)$ of ``usage``: the effective number of codes.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    loss: torch.Tensor
    usage: torch.Tensor
    perplexity: torch.Tensor


@implements("D-straight-through")
def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""$z + \operatorname{sg}[q - z]$: the value of ``q`` with the gradient of ``z``
    (the straight-through estimator, derivation D-straight-through; [Bengio et al. 2013])."""
    check_batch(z, "z")
    check_like(q, z, "q", "z")
    # written sg[q] + (z - sg[z]) rather than z + sg[q - z]: the same value and gradient, but
    # the value is q bit for bit (z - sg[z] is exactly zero), not q up to rounding
    return q.detach() + (z - z.detach())


def _check_latents(z, dim: int, who: str, dtype=None, name: str = "z") -> torch.Tensor:
    """Latents ``(B, *positions, dim)``, finite: a NaN has no nearest code, and must not get a
    plausible index."""
    if not isinstance(z, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor ({who}), got {type(z).__name__}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be floating point ({who}), got dtype {z.dtype}")
    if z.ndim < 2 or z.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (B, *positions, {dim}) with the code dimension last "
            f"({who}), got shape {tuple(z.shape)}"
        )
    if z.numel() == 0:
        raise ValueError(f"{name} must hold at least one vector ({who}), got shape {tuple(z.shape)}")
    check_dtype(z, dtype, name, who)
    return check_finite(z, name, f"{who} assigns each vector a discrete code")


def _check_codebook(codebook) -> torch.Tensor:
    if not isinstance(codebook, torch.Tensor):
        raise InputTypeError(f"codebook must be a torch.Tensor, got {type(codebook).__name__}")
    if codebook.ndim != 2 or codebook.shape[0] < 1 or codebook.shape[1] < 1:
        raise ValueError(f"codebook must have shape (num_codes, dim), got {tuple(codebook.shape)}")
    if not codebook.is_floating_point():
        raise ValueError(f"codebook must be floating point, got dtype {codebook.dtype}")
    return check_finite(codebook, "codebook")


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    r"""Index of the nearest codebook row in Euclidean distance, shape ``z.shape[:-1]``;
    ties go to the lower index."""
    codebook = _check_codebook(codebook)
    z = _check_latents(z, codebook.shape[1], "nearest_code", codebook.dtype)
    return _nearest(z, codebook)


@implements("D-lloyd-step")
def _nearest(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """`nearest_code` on validated input (the one place of the distance formula: the public
    function, `lloyd_step` and the quantizer validate once and call it)."""
    flat = z.reshape(-1, z.shape[-1])
    # ||z||^2 is the same for every code, so it does not change the argmin
    distances = (codebook**2).sum(-1) - 2 * flat @ codebook.mT
    return distances.argmin(-1).reshape(z.shape[:-1])


def _cluster_sums(flat: torch.Tensor, indices: torch.Tensor, num_codes: int):
    counts = torch.zeros(num_codes, dtype=flat.dtype, device=flat.device)
    counts.index_add_(0, indices, torch.ones_like(indices, dtype=flat.dtype))
    sums = torch.zeros(num_codes, flat.shape[-1], dtype=flat.dtype, device=flat.device)
    sums.index_add_(0, indices, flat)
    return counts, sums


@implements("D-lloyd-step", "D-lloyd-max-gaussian")
def lloyd_step(codebook: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""One Lloyd (k-means) update: each code moves to the mean of the points nearest to it;
    a code with no points stays where it is.

    Iterating it decreases the distortion $\mathbb E\|z - q(z)\|^2$ monotonically; for
    $\mathcal N(0,1)$ and two codes the fixed point is $\pm\sqrt{2/\pi}$ with distortion
    $1 - 2/\pi$ (derivation D-lloyd-max-gaussian; [Lloyd 1982; Max 1960]).

    Arguments:
        codebook: shape ``(num_codes, dim)``.
        z: points, shape ``(B, *positions, dim)``.
    """
    codebook = _check_codebook(codebook)
    z = _check_latents(z, codebook.shape[1], "lloyd_step", codebook.dtype)
    indices = _nearest(z, codebook).flatten()
    counts, sums = _cluster_sums(z.reshape(-1, z.shape[-1]), indices, codebook.shape[0])
    occupied = counts > 0
    means = sums / counts.clamp_min(1)[:, None]
    return torch.where(occupied[:, None], means, codebook)


def _usage_and_perplexity(indices: torch.Tensor, num_codes: int, like: torch.Tensor):
    counts = torch.bincount(indices.flatten(), minlength=num_codes).to(like.dtype)
    usage = counts / counts.sum().clamp_min(1)
    entropy = -(usage * torch.log(usage.where(usage > 0, torch.ones_like(usage)))).sum()
    return usage, entropy.exp()


def _squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences over every axis but the batch axis, shape ``(B,)``."""
    return ((a - b) ** 2).reshape(a.shape[0], -1).sum(-1)


class VectorQuantizer(nn.Module):
    r"""Vector quantization with a learned codebook (VQ-VAE, [van den Oord et al. 2017]).

    Each position of $z_e$ is replaced by its nearest code $e_k$,
    $k = \arg\min_j \|z_e - e_j\|$, and passed on with the straight-through gradient
    (D-straight-through). The training loss per example is

    $$
    \|\operatorname{sg}[z_e] - e_k\|^2 + \beta\, \|z_e - \operatorname{sg}[e_k]\|^2,
    $$

    the codebook term moving codes to their points and the commitment term keeping the
    encoder near its codes. With ``ema=True`` the codebook term is replaced by exponential
    moving averages of the cluster counts $N_k$ and sums $m_k$, $e_k = m_k / N_k$
    (appendix of van den Oord et al. 2017); ``decay=0`` makes each training-mode call one
    Lloyd step (`lloyd_step`).

    Arguments:
        num_codes: codebook size $K$.
        dim: code dimension (the last axis of $z_e$).
        beta: commitment weight $\beta$.
        ema: update the codebook by moving averages (in training mode) instead of gradients.
        decay: moving-average decay $\gamma \in [0, 1)$.
        generator: seeds the initial codebook, $\mathcal U(-1/K, 1/K)$.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        beta: float = 0.25,
        *,
        ema: bool = False,
        decay: float = 0.99,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        positive_int(num_codes, "num_codes")
        positive_int(dim, "dim")
        beta = non_negative(beta, "beta")
        decay = in_unit_interval(decay, "decay", open_high=True)
        check_generator(generator)
        self.num_codes, self.dim, self.beta = num_codes, dim, float(beta)
        self.ema, self.decay = bool(ema), float(decay)
        initial = (torch.rand(num_codes, dim, generator=generator) * 2 - 1) / num_codes
        if self.ema:
            self.register_buffer("codebook", initial)
            self.register_buffer("ema_count", torch.zeros(num_codes))
            self.register_buffer("ema_sum", torch.zeros(num_codes, dim))
        else:
            self.codebook = nn.Parameter(initial)

    @property
    def codebook_size(self) -> int:
        return self.num_codes

    @implements("D-straight-through", "D-lloyd-step")
    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantize ``z`` of shape ``(B, *positions, dim)``; in training mode with ``ema=True``
        the codebook is first updated from this batch."""
        z = _check_latents(z, self.dim, "VectorQuantizer", self.codebook.dtype)
        # a diverged codebook would still give every latent a plausible index
        check_finite(self.codebook, "codebook", "a NaN code has no distance to compare")
        if self.ema and self.training:
            self._ema_update(z.detach())
        codebook = self.codebook
        indices = _nearest(z.detach(), codebook.detach())
        codes = codebook[indices]
        commitment = _squared_error(z, codes.detach())
        if self.ema:
            codebook_loss = torch.zeros_like(commitment)
        else:
            codebook_loss = _squared_error(z.detach(), codes)
        usage, perplexity = _usage_and_perplexity(indices, self.num_codes, z)
        return Quantized(
            quantized=straight_through(z, codes),
            codes=codes,
            indices=indices,
            codebook_loss=codebook_loss,
            commitment_loss=commitment,
            loss=codebook_loss + self.beta * commitment,
            usage=usage,
            perplexity=perplexity,
        )

    @torch.no_grad()
    @implements("D-lloyd-step")
    def _ema_update(self, z: torch.Tensor) -> None:
        flat = z.reshape(-1, self.dim)
        indices = _nearest(flat, self.codebook)
        counts, sums = _cluster_sums(flat, indices, self.num_codes)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # count and sum carry the same (1 - decay^n) start-up factor, so their ratio is an
        # unbiased-in-scale cluster mean from the first update on; unused codes stay put
        seen = self.ema_count > 0
        means = self.ema_sum / self.ema_count.clamp_min(torch.finfo(flat.dtype).tiny)[:, None]
        self.codebook.copy_(torch.where(seen[:, None], means, self.codebook))

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, ema={self.ema}"


class FSQ(nn.Module):
    r"""Finite scalar quantization ([Mentzer et al. 2024]): each of the ``len(levels)``
    coordinates is squashed into a bounded interval and rounded to one of $L_i$ evenly
    spaced values, with the straight-through gradient (D-straight-through). The codebook is
    implicit: the grid of $\prod_i L_i$ points, no parameters, no codebook loss.

    With $h_i = (L_i - 1)/2$, coordinate $i$ is bounded as
    $f(z) = (1 - \epsilon)\, h_i \tanh z \in (-h_i, h_i)$ and quantized to the nearest of
    $\{-h_i, -h_i + 1, \dots, h_i\}$ (integers for odd $L_i$, half-integers for even
    $L_i$), i.e. digit $\operatorname{round}(f(z) + h_i) \in \{0, \dots, L_i - 1\}$; codes
    are these values divided by $h_i$, $L_i$ evenly spaced points of $[-1, 1]$. (This
    symmetric grid works for every $L_i \ge 2$; the paper shifts even levels to an
    asymmetric integer grid instead.)

    Arguments:
        levels: $L_i \ge 2$ per coordinate.
        eps: keeps the bound strictly inside the outer rounding cells.
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3):
        super().__init__()
        levels = list(levels)
        if not levels or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in levels
        ):
            raise ValueError(
                f"levels must be a non-empty sequence of integers >= 2, got {levels!r}"
            )
        eps = in_unit_interval(eps, "eps", open_low=True, open_high=True)
        self.levels = levels
        self.eps = float(eps)
        self.dim = len(levels)
        self.register_buffer("_levels", torch.tensor(levels), persistent=False)
        # place values of the mixed-radix code index
        place = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)
        self.register_buffer("_place", place, persistent=False)

    @property
    @plumbing("the size of the implicit grid: the product of the levels")
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _half_range(self, like: torch.Tensor) -> torch.Tensor:
        return (self._levels.to(like) - 1) / 2

    @implements("D-straight-through")
    def bound(self, z: torch.Tensor) -> torch.Tensor:
        r"""$(1 - \epsilon) h \tanh z$: the coordinates before rounding, shape of ``z``."""
        z = _check_latents(z, self.dim, "FSQ")
        return self._bound(z)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) * self._half_range(z) * torch.tanh(z)

    @implements("D-straight-through")
    def forward(self, z: torch.Tensor) -> Quantized:
        z = _check_latents(z, self.dim, "FSQ")
        bounded = self._bound(z)
        half = self._half_range(z)
        digits = torch.round(bounded + half)
        rounded = digits - half
        indices = self._digits_to_indices(digits)
        usage, perplexity = _usage_and_perplexity(indices, self.codebook_size, z)
        zero = z.new_zeros(z.shape[0])
        return Quantized(
            quantized=straight_through(bounded, rounded) / half,
            codes=rounded / half,
            indices=indices,
            codebook_loss=zero,
            commitment_loss=zero,
            loss=zero,
            usage=usage,
            perplexity=perplexity,
        )

    def _digits_to_indices(self, digits: torch.Tensor) -> torch.Tensor:
        return (digits.round().long() * self._place).sum(-1)

    @plumbing("indexing: the mixed-radix number of a grid point's digits")
    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Index in ``[0, codebook_size)`` of each code (the last axis holds a code)."""
        codes = _check_latents(codes, self.dim, "FSQ.codes_to_indices", name="codes")
        half = self._half_range(codes)
        digits = codes * half + half
        if (
            (digits - digits.round()).abs().max() > 1e-6
            or (digits.round() < 0).any()
            or (digits.round() >= self._levels.to(digits)).any()
        ):
            raise ValueError("codes must be points of the FSQ grid (outputs of FSQ)")
        return self._digits_to_indices(digits)

    @plumbing("indexing: the digits of a mixed-radix number, mapped to the grid [-1, 1]")
    def indices_to_codes(
        self, indices: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The code of each index, shape ``(*indices.shape, len(levels))``."""
        if not isinstance(indices, torch.Tensor | int | list | tuple) or isinstance(indices, bool):
            raise InputTypeError(f"indices must be an integer tensor, got {type(indices).__name__}")
        indices = torch.as_tensor(indices)
        if indices.numel() == 0:
            raise ValueError(f"indices must hold at least one index, got shape {tuple(indices.shape)}")
        if (
            indices.is_floating_point()
            or (indices < 0).any()
            or (indices >= self.codebook_size).any()
        ):
            raise ValueError(
                f"indices must be integers in [0, {self.codebook_size}), "
                f"got values in [{int(indices.min())}, {int(indices.max())}]"
            )
        dtype = dtype or torch.get_default_dtype()
        digits = (indices[..., None] // self._place) % self._levels
        half = (self._levels.to(dtype) - 1) / 2
        return (digits.to(dtype) - half) / half

    def implicit_codebook(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """All $\\prod_i L_i$ codes, shape ``(codebook_size, len(levels))``, row $j$ = code $j$."""
        return self.indices_to_codes(torch.arange(self.codebook_size), dtype)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


@dataclasses.dataclass
class VQVAEOutput:
    """What `VQVAE.forward` returns: the reconstruction distribution, the quantization, and
    the per-example loss ``(B,)`` = reconstruction NLL + quantizer loss."""

    reconstruction: D.Distribution
    quantization: Quantized
    loss: torch.Tensor


class VQVAE(nn.Module):
    r"""VQ-VAE ([van den Oord et al. 2017]): encoder $\to$ quantizer $\to$ decoder.

    The per-example loss is $-\log p(x \mid \operatorname{st}(z_e, e_k))$ plus the
    quantizer's loss (codebook and commitment terms; zero for `FSQ`). The KL term of the
    ELBO is the constant $\log K$ per position for a uniform prior over codes and is left
    out; a prior over the indices (an autoregressive model) is fitted afterwards.

    Arguments:
        encoder: ``x -> z_e`` of shape ``(B, *positions, dim)``.
        quantizer: a `VectorQuantizer` or `FSQ`.
        decoder: ``z_q -> p(x | z_q)``, a Distribution with
            ``batch_shape + event_shape == x.shape``.
    """

    def __init__(self, encoder: nn.Module, quantizer: VectorQuantizer | FSQ, decoder: nn.Module):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder

    def _data(self, x):
        # integer data is the data of a categorical decoder (grey levels, tokens): the encoder
        # decides how to read it, so only floating data must match the modules' dtype
        check_batch(x, "x", floating=False)
        if not x.is_floating_point():
            return x
        check_dtype(x, module_dtype(self), "x", "VQVAE")
        return check_finite(x, "x", "its latents get discrete codes")

    @implements("D-straight-through")
    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        quantization = self.quantizer(self.encoder(self._data(x)))
        reconstruction = self.decoder(quantization.quantized)
        log_px = _check_reconstruction(reconstruction, x, "VQVAE decoder")
        return VQVAEOutput(reconstruction, quantization, -log_px + quantization.loss)

    @plumbing("a reduction: the batch mean of the bound per-example loss")
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the per-example loss over the batch (a scalar to minimise)."""
        return self.forward(x).loss.mean()

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices of ``x``, shape ``(B, *positions)``."""
        return self.quantizer(self.encoder(self._data(x))).indices
