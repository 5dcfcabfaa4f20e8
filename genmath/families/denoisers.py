r"""Small denoiser networks for the diffusion examples: an MLP for vectors and a U-Net for
8×8 images, both conditioned on a time (or noise label) and optionally on a class label.

They are deliberately small, so that the worked examples of the diffusion family (2-D
mixtures, scikit-learn's 8×8 `digits`) train in about a minute on two CPU cores. Both have
the signature ``model(x, t, condition=None)``:

* ``t`` is a float, a 0-d tensor or a ``(B,)`` tensor of any real values (a time in
  $[0, 1]$, or EDM's noise label $c_\mathrm{noise} = \tfrac14\log s$), embedded by
  sinusoidal features $(\sin(\omega_k t), \cos(\omega_k t))$ with geometric frequencies
  $\omega_k$ (Vaswani et al. 2017; Ho et al. 2020);
* ``condition`` is ``None`` (unconditional) or a ``(B,)`` tensor of integer labels in
  $\{0, \dots, K-1\}$, where the label `NULL_LABEL` $= -1$ marks an entry as unconditional:
  the *null* embedding that classifier-free guidance trains by condition dropout
  (`genmath.families.diffusion.drop_condition`).
"""

from __future__ import annotations

import torch
from torch import nn

from .._implements import plumbing
from ..core._shapes import check_batch, positive_int

__all__ = ["NULL_LABEL", "TimeEmbedding", "MLPDenoiser", "UNet8"]

NULL_LABEL = -1
"""The label of an unconditional entry (a dropped condition)."""


def _time_column(t, x: torch.Tensor) -> torch.Tensor:
    """``t`` as a ``(B,)`` tensor in x's dtype/device (any real value is allowed)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"t must be a scalar or have shape ({x.shape[0]},) for x of shape "
            f"{tuple(x.shape)}, got shape {tuple(t.shape)}"
        )
    return t


class TimeEmbedding(nn.Module):
    r"""Sinusoidal features of a scalar followed by a two-layer MLP.

    Frequencies $\omega_k = \omega_{max}^{k/(m-1)}$, $k = 0..m-1$, $m$ = ``features // 2``:
    from 1 to ``max_frequency`` (times in $[0, 1]$ need high frequencies to be told apart
    near $t = 0$; EDM's noise labels span a few units, where frequency 1 already suffices).
    """

    def __init__(self, features: int = 64, width: int = 128, max_frequency: float = 1000.0):
        super().__init__()
        positive_int(features, "features")
        half = max(features // 2, 1)
        frequencies = max_frequency ** (torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
        self.register_buffer("frequencies", frequencies.to(torch.get_default_dtype()))
        self.mlp = nn.Sequential(nn.Linear(2 * half, width), nn.SiLU(), nn.Linear(width, width))

    @plumbing("network architecture: sinusoidal features of the time through an MLP")
    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.frequencies.to(t.dtype)
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class _LabelEmbedding(nn.Module):
    """Class labels ``0..K-1`` and `NULL_LABEL` (row K) to vectors."""

    def __init__(self, classes: int, width: int):
        super().__init__()
        self.classes = positive_int(classes, "classes")
        self.table = nn.Embedding(classes + 1, width)

    def forward(self, condition, batch: int, device) -> torch.Tensor:
        if condition is None:
            labels = torch.full((batch,), self.classes, dtype=torch.long, device=device)
        else:
            if not isinstance(condition, torch.Tensor) or condition.shape != (batch,):
                shape = (
                    tuple(condition.shape)
                    if isinstance(condition, torch.Tensor)
                    else type(condition).__name__
                )
                raise ValueError(
                    f"condition must be a ({batch},) tensor of class labels (or None), got {shape}"
                )
            if condition.is_floating_point() or condition.is_complex():
                raise ValueError(f"condition must hold integer labels, got dtype {condition.dtype}")
            bad = (condition < NULL_LABEL) | (condition >= self.classes)
            if bad.any():
                raise ValueError(
                    f"labels must lie in 0..{self.classes - 1} or be NULL_LABEL = {NULL_LABEL}, "
                    f"got {condition[bad].tolist()[:5]}"
                )
            labels = torch.where(condition == NULL_LABEL, self.classes, condition).long()
        return self.table(labels)


class MLPDenoiser(nn.Module):
    r"""A residual MLP $f(x, t, c)$ on flat vectors ``(B, dim)`` with a time embedding (and an
    optional class embedding) added to every hidden layer. The output has the shape of ``x``
    and means whatever it is trained to predict (``"eps"``, ``"x0"``, ``"v"``, ...).

    Arguments:
        dim: the event size.
        hidden: width of the hidden layers.
        depth: number of residual blocks.
        classes: number of class labels for conditioning (``None``: unconditional only).
        max_frequency: largest frequency of the time features (see `TimeEmbedding`).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        depth: int = 3,
        classes: int | None = None,
        max_frequency: float = 1000.0,
    ):
        super().__init__()
        self.dim = positive_int(dim, "dim")
        positive_int(hidden, "hidden")
        positive_int(depth, "depth")
        self.time = TimeEmbedding(64, hidden, max_frequency)
        self.label = _LabelEmbedding(classes, hidden) if classes is not None else None
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
            )
            for _ in range(depth)
        )
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    @property
    def has_null_condition(self) -> bool:
        """Whether the model has a trained unconditional branch (the null label)."""
        return self.label is not None

    @plumbing("network architecture: a residual MLP with time and class embeddings")
    def forward(self, x: torch.Tensor, t, condition=None) -> torch.Tensor:
        check_batch(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        embedding = self.time(_time_column(t, x))
        if self.label is not None:
            embedding = embedding + self.label(condition, x.shape[0], x.device)
        elif condition is not None:
            raise ValueError("this model has no class embedding (classes=None); got a condition")
        h = self.input(x)
        for block in self.blocks:
            h = h + block(h + embedding)
        return self.output(h)


class _ResBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, embedding: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, channels_in), channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.project = nn.Linear(embedding, channels_out)
        self.norm2 = nn.GroupNorm(min(8, channels_out), channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = (
            nn.Conv2d(channels_in, channels_out, 1)
            if channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.project(embedding)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet8(nn.Module):
    r"""A small U-Net for ``(B, channels, 8, 8)`` images: residual blocks at 8×8 and 4×4 and a
    2×2 bottleneck, skip connections between the resolutions, time (and class) embedding
    added inside every block. About 0.3 M parameters with the default width.

    Arguments:
        channels: image channels (1 for `digits`).
        width: channels at 8×8 (doubled at 4×4 and 2×2).
        classes: number of class labels for conditioning (``None``: unconditional only).
        max_frequency: largest frequency of the time features.
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        classes: int | None = None,
        max_frequency: float = 1000.0,
    ):
        super().__init__()
        self.channels = positive_int(channels, "channels")
        positive_int(width, "width")
        embedding = 4 * width
        self.time = TimeEmbedding(64, embedding, max_frequency)
        self.label = _LabelEmbedding(classes, embedding) if classes is not None else None
        wide = 2 * width
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down8 = _ResBlock(width, width, embedding)
        self.down4 = _ResBlock(width, wide, embedding)
        self.middle = _ResBlock(wide, wide, embedding)
        self.up4 = _ResBlock(2 * wide, wide, embedding)
        self.up8 = _ResBlock(wide + width, width, embedding)
        self.head = nn.Sequential(
            nn.GroupNorm(min(8, width), width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    @property
    def has_null_condition(self) -> bool:
        """Whether the model has a trained unconditional branch (the null label)."""
        return self.label is not None

    @plumbing("network architecture: a small U-Net with time and class embeddings")
    def forward(self, x: torch.Tensor, t, condition=None) -> torch.Tensor:
        check_batch(x, "x")
        if x.shape[1:] != (self.channels, 8, 8):
            raise ValueError(f"x must have shape (B, {self.channels}, 8, 8), got {tuple(x.shape)}")
        embedding = self.time(_time_column(t, x))
        if self.label is not None:
            embedding = embedding + self.label(condition, x.shape[0], x.device)
        elif condition is not None:
            raise ValueError("this model has no class embedding (classes=None); got a condition")
        h8 = self.down8(self.stem(x), embedding)
        h4 = self.down4(nn.functional.avg_pool2d(h8, 2), embedding)
        h2 = self.middle(nn.functional.avg_pool2d(h4, 2), embedding)
        u4 = self.up4(
            torch.cat([nn.functional.interpolate(h2, scale_factor=2.0), h4], 1), embedding
        )
        u8 = self.up8(
            torch.cat([nn.functional.interpolate(u4, scale_factor=2.0), h8], 1), embedding
        )
        return self.head(u8)
