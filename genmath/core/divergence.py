r"""Divergence of a vector field: exact (autograd) or Hutchinson's unbiased estimate.

The divergence $\nabla\cdot f(x) = \operatorname{tr} \partial f/\partial x$ is what the
instantaneous change of variables integrates (see `genmath.core.likelihood`). For a field
on an event of shape `(*event)` the Jacobian is taken over the flattened event, so images
and vectors are handled alike.

**Exact divergence, chosen by measurement.** The $D$ diagonal entries of the Jacobian come
either from a loop of $D$ vector–Jacobian products on one retained forward graph, or from
one `autograd.grad(..., is_grads_batched=True)` call on the $D$ one-hot cotangents (the
batched product, in chunks that bound its memory). Which is faster depends on the field:
for a graph of many small operations on a small batch (the exact velocity of a Gaussian
mixture) the batched product is several times faster, since it walks the graph once instead
of $D$ times; for a compute-bound network the two are within tens of percent, the loop ahead
at $D = 2$ and the batched product from $D \approx 8$ on (measured on CPU, float32, batch
256, a two-hidden-layer MLP of width 256: 4.1 vs 4.9 ms at $D = 2$, 19 vs 16 ms at $D = 8$,
430 vs 317 ms at $D = 128$, per evaluation). So a single call of `divergence` on CPU uses the
loop and on accelerators the batched product, while `ode_log_likelihood`, which evaluates
the same field hundreds of times, times both on its first evaluations (thread CPU time on
CPU), keeps the faster and remembers the choice for that kind of field and input. Either
way only the forward graph is retained between products; no graph per dimension is kept
alive unless the caller asks for a differentiable result (`create_graph`).

**Structured divergence (the hook).** A field that knows its Jacobian's structure can
supply its exact divergence itself: an object with a method
`value_and_divergence(x) -> (f(x), div f(x))` (protocol
[`FieldWithDivergence`][genmath.core.divergence.FieldWithDivergence]) for `divergence`, and
`velocity_and_divergence(x, t) -> (v(x, t), div v(x, t))` (protocol
[`VelocityWithDivergence`][genmath.core.divergence.VelocityWithDivergence]) for the
time-dependent velocities of `ode_log_likelihood`. `method="exact"` uses the hook when it is
present (pass `structured=False` to force autograd, e.g. to check the hook);
`method="hutchinson"` ignores it (the caller asked for the estimator).
[`genmath.nn.VelocityMLP`][genmath.nn.VelocityMLP] implements both.

Derivations: D-hutchinson-unbiased, D-hutchinson-variance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from .._implements import implements
from ._shapes import check_batch
from ._validate import check_generator, check_option, positive_int

__all__ = [
    "METHODS",
    "NOISES",
    "FieldWithDivergence",
    "VelocityWithDivergence",
    "divergence",
    "draw_probes",
]

METHODS = ("exact", "hutchinson")
NOISES = ("rademacher", "gaussian")

# On accelerators the batched vector-Jacobian product handles this many cotangents at once at
# most, so its memory stays within a fixed multiple (this many copies) of one backward pass.
_ACCELERATOR_CHUNK = 64


@runtime_checkable
class FieldWithDivergence(Protocol):
    """A field $x \\mapsto f(x)$ that supplies its own exact divergence.

    `value_and_divergence(x)` returns `(f(x), div f(x))` with shapes `x.shape` and `(B,)`.
    `divergence(fn, x, method="exact")` calls it instead of differentiating `fn`.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def value_and_divergence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class VelocityWithDivergence(Protocol):
    """A time-dependent velocity $v(x, t)$ that supplies its own exact divergence in $x$.

    `velocity_and_divergence(x, t)` returns `(v(x, t), div_x v(x, t))` with shapes `x.shape`
    and `(B,)`; `ode_log_likelihood(..., divergence="exact")` calls it instead of
    differentiating the velocity.
    """

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...

    def velocity_and_divergence(
        self, x: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@implements("D-hutchinson-unbiased", "D-instantaneous-change-of-variables")
def divergence(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    method: str = "exact",
    probes: int = 1,
    generator: torch.Generator | None = None,
    noise: str = "rademacher",
    *,
    structured: bool = True,
    create_graph: bool | None = None,
) -> torch.Tensor:
    r"""Divergence $\nabla\cdot f(x) = \operatorname{tr}\,\partial f / \partial x$ per sample.

    Arguments:
        fn: a field mapping `x` of shape `(B, *event)` to a tensor of the same shape; each
            sample's output may depend only on that sample (the Jacobian is per sample).
        x: points, shape `(B, *event)`.
        method: `"exact"` (the trace of the Jacobian, by autograd or by the field's own hook)
            or `"hutchinson"` (the unbiased estimate $z^\top (\partial f/\partial x) z$ with
            $\mathbb E[z z^\top] = I$, averaged over `probes` independent probes; D-hutchinson-unbiased).
        probes: number of Hutchinson probes to average (ignored by `"exact"`).
        generator: random source of the probes.
        noise: `"rademacher"` (variance $2(\|A\|_F^2 - \sum_i A_{ii}^2)$ per probe) or
            `"gaussian"` (variance $2\|A\|_F^2$), $A = (J + J^\top)/2$; D-hutchinson-variance.
        structured: use `fn.value_and_divergence` when `fn` provides it
            ([`FieldWithDivergence`][genmath.core.divergence.FieldWithDivergence]).
        create_graph: make the result differentiable (w.r.t. `x` and the parameters `fn`
            closes over). Default: whether grad mode is on where `divergence` is called.
            Under `torch.no_grad()` the result is a plain tensor and no graph is kept.

    Returns:
        Tensor of shape `(B,)` in the dtype and device of `x`.
    """
    check_batch(x, event=True)
    _check_method(method, probes, noise)
    check_generator(generator)
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    if method == "exact" and structured and isinstance(fn, FieldWithDivergence):
        with torch.set_grad_enabled(create_graph):
            value, div = fn.value_and_divergence(x)
        _check_field(value, div, x, "fn.value_and_divergence")
        return div
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        y = fn(x_in)
        _check_field(y, None, x, "fn")
        if not y.requires_grad:  # fn ignores x: a constant field has zero divergence
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if method == "exact":
            div = _exact_from_graph(y, x_in, create_graph)
        else:
            z = draw_probes(x, probes, noise, generator)
            div = _hutchinson_from_graph(y, x_in, z, create_graph)
    return div if create_graph else div.detach()


@implements("D-hutchinson-unbiased", "D-instantaneous-change-of-variables")
def draw_probes(
    x: torch.Tensor,
    probes: int = 1,
    noise: str = "rademacher",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""`probes` independent Hutchinson probes shaped like `x`: a tensor `(probes, *x.shape)`.

    Each entry is $\pm 1$ with probability $1/2$ (`"rademacher"`) or standard normal
    (`"gaussian"`); either way $\mathbb E[z z^\top] = I$, which is all unbiasedness needs.
    """
    _check_method("hutchinson", probes, noise)
    shape = (probes, *x.shape)
    if noise == "gaussian":
        return torch.randn(shape, dtype=x.dtype, device=x.device, generator=generator)
    bits = torch.randint(0, 2, shape, device=x.device, generator=generator)
    return bits.to(x.dtype) * 2 - 1


def _exact_from_graph(y: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """Exact divergence of `y = f(x)` from its retained forward graph (strategy: module doc)."""
    if x.device.type == "cpu":
        return _exact_loop(y, x, create_graph)
    return _exact_batched(y, x, create_graph, chunk=_ACCELERATOR_CHUNK)


# strategy chosen per kind of field and input: (field key, shape, dtype, device, graph) -> name
_TUNED_CHOICES: dict[tuple, str] = {}
_TUNED_CHOICES_KEPT = 256
# evaluations each strategy is timed on before the faster one is kept
_TUNING_SAMPLES = 2


def _field_key(field) -> object:
    """What identifies a field across calls, for the remembered choice of strategy: a
    function's code with what it closes over (the same ``lambda y, t: model(y, t)`` written
    once and closing over a small analytic field or a wide network must not share a choice:
    the faster strategy differs between them), a bound method's code with its object, else
    the field's type. Objects count by identity; the cache is bounded (`_TunedExact`)."""
    function = getattr(field, "__func__", field)
    code = getattr(function, "__code__", None)
    if code is None:
        return type(field)
    captured = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            captured.append(id(cell.cell_contents))
        except ValueError:  # a cell not yet filled
            captured.append(None)
    return (code, id(getattr(field, "__self__", None)), tuple(captured))


class _TunedExact:
    """Exact divergence for repeated calls on same-shaped inputs (an ODE solve): time the
    loop and the batched vector-Jacobian product on the first evaluations, keep the faster,
    and remember the choice for this kind of field and input, so later solves start with it.

    Which one wins depends on the field more than on the size: a graph of many small
    operations on a small batch (an analytic mixture velocity) runs several times faster
    batched, since the batched backward walks the graph once instead of D times, while for a
    compute-bound network it is a matter of tens of percent either way. Each strategy is timed
    on `_TUNING_SAMPLES` evaluations, alternated, by the CPU time of this thread on CPU (other
    processes on a shared machine do not move it) and by synchronised wall time on an
    accelerator; the smaller of each one's samples decides. The two give the same values up to
    round-off; a field whose backward cannot be batched keeps the loop.
    """

    def __init__(self, key: object = None) -> None:
        self._key = key
        self._seconds: dict[str, list[float]] = {"loop": [], "batched": []}
        self.choice: str | None = _TUNED_CHOICES.get(key) if key is not None else None

    def __call__(self, y: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if self.choice is not None:
            return self._run(self.choice, y, x, create_graph)
        if x[0].numel() == 1:  # one cotangent: the two strategies are the same product
            self._settle("loop")
            return self._run("loop", y, x, create_graph)
        done = len(self._seconds["loop"]) + len(self._seconds["batched"])
        # loop, batched, batched, loop, ...: neither strategy always pays the first call
        candidate = ("loop", "batched", "batched", "loop")[done % 4]
        clock = _clock(x.device)
        start = clock()
        try:
            div = self._run(candidate, y, x, create_graph)
        except RuntimeError:  # no batching rule for some backward op: keep the loop
            self._settle("loop")
            return self._run("loop", y, x, create_graph)
        self._seconds[candidate].append(clock() - start)
        if done + 1 >= 2 * _TUNING_SAMPLES:
            self._settle(min(self._seconds, key=lambda name: min(self._seconds[name])))
        return div

    def _settle(self, choice: str) -> None:
        self.choice = choice
        if self._key is not None:
            if len(_TUNED_CHOICES) >= _TUNED_CHOICES_KEPT:  # keys hold ids of passing objects
                _TUNED_CHOICES.clear()
            _TUNED_CHOICES[self._key] = choice

    @staticmethod
    def _run(strategy: str, y: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if strategy == "loop":
            return _exact_loop(y, x, create_graph)
        return _exact_batched(y, x, create_graph, chunk=_ACCELERATOR_CHUNK)


def _clock(device: torch.device):
    if device.type == "cpu":
        return time.thread_time
    if device.type == "cuda":

        def synchronised() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return synchronised
    return time.perf_counter


def _identity(dims: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The cotangents $e_i$ as the rows of one identity, kept between calls: it is never
    written to, so a differentiable backward may safely hold on to its rows."""
    key = (dims, dtype, device)
    eye = _IDENTITIES.get(key)
    if eye is None:
        if len(_IDENTITIES) > 64:
            _IDENTITIES.clear()
        eye = _IDENTITIES[key] = torch.eye(dims, dtype=dtype, device=device)
    return eye


_IDENTITIES: dict[tuple, torch.Tensor] = {}


# The autograd engine's entry point behind `torch.autograd.grad`, where this torch has it:
# `grad`'s Python wrapper re-validates the cotangent's shape and type on every call (about a
# sixth of a small field's cost per product), while `_exact_loop` builds each cotangent with
# the output's own shape, dtype and device. Older torch: the public function.
_run_backward = getattr(torch.autograd.graph, "_engine_run_backward", None)


def _vjp(y: torch.Tensor, x: torch.Tensor, cotangent: torch.Tensor, create_graph: bool):
    r"""$v^\top \partial y/\partial x$ with the graph kept; zeros where `y` does not depend
    on `x` (what ``materialize_grads=True`` gives)."""
    if _run_backward is None or torch.overrides.has_torch_function((y, x)):
        (row,) = torch.autograd.grad(
            y,
            x,
            cotangent,
            retain_graph=True,
            create_graph=create_graph,
            materialize_grads=True,
        )
        return row
    (row,) = _run_backward(
        (y,), (cotangent,), True, create_graph, (x,), True, accumulate_grad=False
    )
    return torch.zeros_like(x) if row is None else row


def _exact_loop(y: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """`D` vector-Jacobian products with the one-hot cotangents $e_i$ (one per event entry)."""
    batch, dims = x.shape[0], x[0].numel()
    div = None
    # Rows of one identity, broadcast over the batch: no per-dimension allocation.
    eye = _identity(dims, y.dtype, y.device)
    for i in range(dims):
        cotangent = eye[i].expand(batch, dims).reshape(y.shape)
        row = _vjp(y, x, cotangent, create_graph)
        entry = row.reshape(batch, dims)[:, i]
        div = entry if div is None else div + entry
    return div


def _exact_batched(
    y: torch.Tensor, x: torch.Tensor, create_graph: bool, chunk: int
) -> torch.Tensor:
    """The same products, `chunk` at a time through `is_grads_batched` (vmap over backward)."""
    batch, dims = x.shape[0], x[0].numel()
    div = torch.zeros(batch, dtype=x.dtype, device=x.device)
    eye = _identity(dims, x.dtype, x.device)
    for start in range(0, dims, chunk):
        stop = min(start + chunk, dims)
        cotangents = eye[start:stop, None, :].expand(stop - start, batch, dims)
        (rows,) = torch.autograd.grad(
            y,
            x,
            cotangents.reshape(stop - start, *y.shape),
            retain_graph=True,
            create_graph=create_graph,
            is_grads_batched=True,
            materialize_grads=True,
        )
        rows = rows.reshape(stop - start, batch, dims)
        div = div + rows.diagonal(offset=start, dim1=0, dim2=2).sum(-1)
    return div


@implements("D-hutchinson-unbiased", "D-hutchinson-variance")
def _hutchinson_from_graph(
    y: torch.Tensor, x: torch.Tensor, z: torch.Tensor, create_graph: bool
) -> torch.Tensor:
    r"""$\frac1P\sum_p z_p^\top (\partial y/\partial x) z_p$ for probes `z` of shape `(P, *x.shape)`."""
    batch = x.shape[0]
    total = torch.zeros(batch, dtype=x.dtype, device=x.device)
    for probe in z:
        (vjp,) = torch.autograd.grad(
            y, x, probe, retain_graph=True, create_graph=create_graph, materialize_grads=True
        )
        total = total + (vjp * probe).reshape(batch, -1).sum(-1)
    return total / z.shape[0]


def _check_method(method: str, probes: int, noise: str, name: str = "method") -> None:
    """The divergence options; ``name`` is the argument the caller passed the method as
    (``divergence=`` in `ode_log_likelihood`)."""
    check_option(method, METHODS, name)
    positive_int(probes, "probes")
    check_option(noise, NOISES, "noise")


def _check_field(
    value: torch.Tensor,
    div: torch.Tensor | None,
    x: torch.Tensor,
    source: str,
    t: torch.Tensor | None = None,
) -> None:
    """Shapes of a field's value (that of `x`) and divergence (`(B,)`); `t` names the time
    (read only for a message: reading a tensor's value would wait for its device on every
    evaluation of an ODE solve)."""
    value_ok = isinstance(value, torch.Tensor) and value.shape == x.shape
    div_ok = div is None or (isinstance(div, torch.Tensor) and div.shape == x.shape[:1])
    if value_ok and div_ok:
        return
    where = "" if t is None else f" at t = {float(t.detach()):.6g}"
    if not value_ok:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"{source}{where} must return a tensor of shape {tuple(x.shape)} (that of x), got {got}"
        )
    if not div_ok:
        got = tuple(div.shape) if isinstance(div, torch.Tensor) else type(div).__name__
        raise ValueError(
            f"{source}{where} must return a divergence of shape {tuple(x.shape[:1])}, got {got}"
        )
