"""Shared pieces of the GAN topics: the symbols of a pointwise loss and the helpers that run
the code's batch losses at sampled points.

Every loss of `genmath.families.gan` is a Monte-Carlo average over a batch of real and a
batch of fake samples; the derivations are pointwise, with the densities $p$ (data) and $q$
(generator) at one point as weights. The bindings evaluate the code on batches of two equal
outputs (so a `.sum()` in place of a `.mean()` doubles the value) and weigh the real and the
fake part by $p$ and $q$, isolating each part by an output at which the other part vanishes
exactly.
"""

import sympy as sp

from ._engine import LogUniform, Uniform

GAN = "genmath.families.gan"
TESTS = ("tests/families/test_gan.py",)

p, q = sp.symbols("p q", positive=True)  # the data and generator densities at one point
D = sp.Symbol("D", real=True)  # the discriminator's raw output at that point

DENSITY = LogUniform(1e-3, 1e3)
OUTPUT = Uniform(-10, 10)


def pair(value):
    """A batch of two equal outputs: its mean is the value, its sum twice the value."""
    import torch

    return torch.stack([value, value])


def rows(points, fn, *symbols):
    """``fn`` at every sampled point (the GAN losses reduce a batch to a scalar)."""
    import torch

    count = len(points[symbols[0]])
    return torch.stack([fn(*(points[s][j] for s in symbols)) for j in range(count)])


def log_densities(points):
    """``(log_p, log_q)`` callables returning the sampled log-densities, one per row."""
    log_p, log_q = points[p].log(), points[q].log()
    return (lambda x: log_p[: x.shape[0]]), (lambda x: log_q[: x.shape[0]])


def optimal_outputs(loss, points):
    import torch

    from ..families.gan import optimal_discriminator

    log_p, log_q = log_densities(points)
    rows = torch.zeros(len(points[p]), 1, dtype=torch.float64)
    return optimal_discriminator(loss, log_p, log_q)(rows)
