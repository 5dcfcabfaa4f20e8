"""Flows as `torch.distributions.Distribution`s, and adapters between genmath bijections and
`torch.distributions.Transform`. Users import these from `genmath.core.change_of_variables`.
"""

from __future__ import annotations

import weakref

import torch
from torch.distributions import Distribution, Independent, Transform, constraints

from .._implements import implements
from ._bijections import Bijection, _shape_text, _sum_event
from ._random import global_stream_from
from ._validate import InputTypeError, check_finite, check_generator, check_int

__all__ = ["Flow", "BijectionTransform", "TransformBijection", "as_transform", "from_transform"]


def _draw(sample_fn, generator: torch.Generator | None):
    """Run `sample_fn` reproducibly from `generator` (see `global_stream_from`)."""
    check_generator(generator)
    with global_stream_from(generator):
        return sample_fn()


class Flow(Distribution):
    r"""A normalizing flow as a `torch.distributions.Distribution`.

    `transform` maps **data to the base** (the density direction): with $z = f(x)$,

    $$
    \log p(x) = \log p_Z(f(x)) + \log|\det J_f(x)|,
    $$

    and samples are $x = f^{-1}(z)$, $z \sim p_Z$ (Papamakarios et al. 2021). A
    `MaskedAutoregressive` stack therefore has a one-pass `log_prob` (MAF);
    wrap it in `Inverse` for one-pass sampling (IAF).

    Arguments:
        transform: a [`Bijection`][genmath.core.change_of_variables.Bijection].
        base: any torch `Distribution` with `rsample`/`log_prob` (e.g. a standard normal).
            If its event has fewer dimensions than `transform.event_dim`, its rightmost
            batch dimensions are reinterpreted as event dimensions (`Independent`).
        context: fixed conditioning context passed to the transform (a conditional flow is
            a `Flow` per context; building one is cheap).

    `sample` and `rsample` accept `generator=` (genmath's convention), in addition to
    `sample_shape`.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        transform: Bijection,
        base: Distribution,
        context: torch.Tensor | None = None,
        validate_args: bool | None = False,
    ):
        if not isinstance(transform, Bijection):
            raise TypeError(
                f"transform must be a genmath Bijection, got {type(transform).__name__}"
            )
        if not isinstance(base, Distribution):
            raise TypeError(f"base must be a torch Distribution, got {type(base).__name__}")
        missing = transform.event_dim - len(base.event_shape)
        if missing > 0:
            if len(base.batch_shape) < missing:
                raise ValueError(
                    f"the transform has event_dim {transform.event_dim} but the base has event "
                    f"shape {_shape_text(base.event_shape)} and batch shape "
                    f"{_shape_text(base.batch_shape)}"
                )
            base = Independent(base, missing)
        event_shape = base.event_shape
        if transform.features is not None and event_shape[-1:] != (transform.features,):
            raise ValueError(
                f"the transform expects events of size {transform.features} in the last "
                f"dimension, got a base with event shape {_shape_text(event_shape)}"
            )
        batch_shape = base.batch_shape
        if context is not None and not isinstance(context, torch.Tensor):
            raise InputTypeError(f"context must be a torch.Tensor or None, got {type(context).__name__}")
        if context is not None:
            # a conditional flow has one distribution per context
            context_batch = context.shape[:-1]
            try:
                batch_shape = torch.broadcast_shapes(batch_shape, context_batch)
            except RuntimeError:
                raise ValueError(
                    f"context of shape {_shape_text(context.shape)} does not broadcast with the "
                    f"base batch shape {_shape_text(base.batch_shape)}"
                ) from None
            if batch_shape != base.batch_shape:
                base = base.expand(batch_shape)
        self.transform = transform
        self.base = base
        self.context = context
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def _check_value(self, x, name: str = "value"):
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        n = len(self.event_shape)
        if x.shape[x.ndim - n :] != self.event_shape or x.ndim < n:
            raise ValueError(
                f"{name} must have shape (*batch, {', '.join(map(str, self.event_shape))}), "
                f"got shape {_shape_text(x.shape)}"
            )

    @implements("D-change-of-variables-1d")
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """$\\log p(x) = \\log p_Z(f(x)) + \\log|\\det J_f(x)|$, shape `value.shape[:-event_dim]`."""
        return self._log_prob(value, "value")

    def _log_prob(self, value: torch.Tensor, name: str) -> torch.Tensor:
        self._check_value(value, name)
        check_finite(value, name, "a flow's density is defined at finite points")
        z, logdet = self.transform._pass(value, self.context, name, "forward")
        log_base = self.base.log_prob(z)
        if log_base.dtype != value.dtype:
            raise InputTypeError(
                f"{name} has dtype {value.dtype} but the base distribution computes in "
                f"{log_base.dtype}; convert one of them"
            )
        return log_base + logdet

    @implements("D-change-of-variables-1d")
    def rsample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Reparameterized samples $x = f^{-1}(z)$, shape `sample_shape + batch + event`."""
        z = _draw(lambda: self.base.rsample(torch.Size(sample_shape)), generator)
        return self.transform.inverse(z, self.context)[0]

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    @implements("D-change-of-variables-1d")
    def rsample_and_log_prob(self, sample_shape=(), generator=None):
        """Samples and their log-density from one inverse pass:
        $\\log p(x) = \\log p_Z(z) - \\log|\\det J_{f^{-1}}(z)|$."""
        shape = torch.Size(sample_shape)
        z = _draw(lambda: self.base.rsample(shape), generator)
        x, logdet = self.transform.inverse(z, self.context)
        return x, self.base.log_prob(z) - logdet

    def sample_and_log_prob(self, sample_shape=(), generator=None):
        with torch.no_grad():
            return self.rsample_and_log_prob(sample_shape, generator)


class BijectionTransform(Transform):
    """A genmath `Bijection` seen as a `torch.distributions.Transform` (same direction:
    the transform's `__call__` is the bijection's `forward`).

    `log_abs_det_jacobian(x, y)` reuses the log-determinant computed with the last call or
    inverse on the same tensors, so `TransformedDistribution.log_prob` costs one pass.
    """

    bijective = True

    def __init__(self, bijection: Bijection, context: torch.Tensor | None = None, cache_size=0):
        super().__init__(cache_size=cache_size)
        self.bijection = bijection
        self.context = context
        self._last = None

    @property
    def domain(self):
        return constraints.independent(constraints.real, self.bijection.event_dim)

    @property
    def codomain(self):
        return constraints.independent(constraints.real, self.bijection.event_dim)

    def _remember(self, x, y, logdet):
        self._last = (weakref.ref(x), weakref.ref(y), logdet)

    def _call(self, x):
        y, logdet = self.bijection.forward(x, self.context)
        self._remember(x, y, logdet)
        return y

    def _inverse(self, y):
        x, logdet = self.bijection.inverse(y, self.context)
        self._remember(x, y, -logdet)
        return x

    def log_abs_det_jacobian(self, x, y):
        if self._last is not None:
            last_x, last_y, logdet = self._last
            if last_x() is x and last_y() is y:
                return logdet
        return self.bijection.forward(x, self.context)[1]

    def with_cache(self, cache_size=1):
        return BijectionTransform(self.bijection, self.context, cache_size)


class TransformBijection(Bijection):
    """A `torch.distributions.Transform` seen as a genmath `Bijection` (`forward` is the
    transform's `__call__`). Its log-determinant is summed over `event_dim` trailing
    dimensions (default: the transform's own event dimension, at least 1).
    """

    def __init__(self, transform: Transform, event_dim: int | None = None):
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"expected a torch Transform, got {type(transform).__name__}")
        if not transform.bijective:
            raise ValueError(f"expected a bijective Transform, got {transform!r}")
        own = max(transform.domain.event_dim, transform.codomain.event_dim)
        self.transform = transform
        self.event_dim = max(own, 1) if event_dim is None else check_int(event_dim, "event_dim", 0)
        if self.event_dim < own:
            raise ValueError(f"event_dim must be at least {own} for {transform!r}, got {event_dim}")

    def _forward(self, x, context):
        y = self.transform(x)
        logdet = self.transform.log_abs_det_jacobian(x, y)
        return y, _sum_event(
            logdet.expand(x.shape[: x.ndim - self.transform.domain.event_dim]),
            x.ndim - self.event_dim,
        )

    def _inverse(self, y, context):
        x = self.transform.inv(y)
        logdet = self.transform.log_abs_det_jacobian(x, y)
        return x, -_sum_event(
            logdet.expand(y.shape[: y.ndim - self.transform.codomain.event_dim]),
            y.ndim - self.event_dim,
        )


def as_transform(bijection: Bijection, context: torch.Tensor | None = None) -> BijectionTransform:
    """Adapter genmath → torch: `TransformedDistribution(base, as_transform(Inverse(f)))`
    has the density of `Flow(f, base)` (torch transforms map base → data)."""
    return BijectionTransform(bijection, context)


def from_transform(transform: Transform, event_dim: int | None = None) -> TransformBijection:
    """Adapter torch → genmath: a bijective `torch.distributions.Transform` as a `Bijection`."""
    return TransformBijection(transform, event_dim)
