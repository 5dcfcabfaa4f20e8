"""Reproducible, independent randomness per rank (and per evaluation batch) from one seed."""

from __future__ import annotations

import hashlib
import json

import torch

from ._collectives import rank_and_world_size


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed for the stream named by ``keys`` (e.g. ``("rank", 3)``) under ``seed``.

    The seed is the leading 63 bits of the SHA-256 digest of the JSON list
    ``["genmath.derive_seed", seed, *keys]``: the same on every machine, Python and torch
    version, and unrelated for different keys (nearby seeds such as ``seed + rank`` give
    streams that merely *look* unrelated, and ``seed + rank`` collides with ``seed + 1`` on
    the next rank). ``keys`` are integers or strings.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise TypeError(f"keys must be integers or strings, got {key!r}")
    payload = json.dumps(["genmath.derive_seed", seed, *keys]).encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "big") >> 1


def rank_generator(
    seed: int,
    *,
    rank: int | None = None,
    group=None,
    device: torch.device | str | None = None,
) -> torch.Generator:
    """A `torch.Generator` for this rank: seeded with `derive_seed(seed, "rank", rank)`, so a
    run is reproducible from ``seed`` and ranks draw independent noise.

    ``rank`` defaults to this process's rank in ``group`` (the default group; 0 without a
    process group). Pass it explicitly to rebuild another rank's stream, e.g. to check a
    distributed run against a single process. ``device``: the generator's device (CPU by
    default; a CUDA tensor needs a CUDA generator).
    """
    if rank is None:
        rank = rank_and_world_size(group)[0]
    elif isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(f"rank must be a non-negative integer, got {rank!r}")
    generator = torch.Generator(device=device if device is not None else "cpu")
    return generator.manual_seed(derive_seed(seed, "rank", rank))
