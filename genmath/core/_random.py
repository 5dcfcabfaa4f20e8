"""Reproducible draws from torch.distributions, which sample from the global random stream.

Every stochastic genmath function takes a `torch.Generator`; a torch `Distribution` cannot,
so its draws are made under the global stream seeded from the caller's generator, and the
global stream is restored afterwards (the caller's own random state is undisturbed).
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def global_stream_from(generator: torch.Generator | None):
    """Make torch.distributions (which draw from the global stream) reproducible from
    ``generator``, without disturbing the global stream the caller sees afterwards.

    Only the global generator of ``generator``'s device is seeded and restored
    (`torch.manual_seed` would reseed every backend, which costs more than a small ELBO)."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if generator.device.type == "cuda":
        index = generator.device.index
        saved = torch.cuda.get_rng_state(index)
        global_generator = torch.cuda.default_generators[
            torch.cuda.current_device() if index is None else index
        ]
        restore = lambda: torch.cuda.set_rng_state(saved, index)  # noqa: E731
    else:
        saved = torch.get_rng_state()
        global_generator = torch.default_generator
        restore = lambda: torch.set_rng_state(saved)  # noqa: E731
    global_generator.manual_seed(seed)
    try:
        yield
    finally:
        restore()
