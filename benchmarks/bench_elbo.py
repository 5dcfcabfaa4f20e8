"""genmath `elbo` / `iwae` against pyro's matching estimators on PPCA.

Like for like: genmath's analytic-KL ELBO (`kl="analytic"`) against pyro's
`TraceMeanField_ELBO` (which also uses the closed-form KL of mean-field Gaussians);
genmath's Monte-Carlo-KL ELBO (`kl="mc"`) against pyro's `Trace_ELBO`; `iwae` against
`RenyiELBO(alpha=0)`. Same model, same variational family, same inputs, one process. Times
come from the harness (`_harness.py`: thread CPU time, interleaved rounds, median ratio with
its interquartile range), for the value alone and for value + backward; accuracy against the
exact answer: with a Gaussian q, ELBO = log p(x) - KL(q || p(z|x)) in closed form; IWAE lies
between that and log p(x).

Run: ``python benchmarks/bench_elbo.py [--quick] [--update]``.
"""

from __future__ import annotations

import math
import pathlib
import platform
import sys

import numpy as np
import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from torch import distributions as D

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

import genmath  # noqa: E402
from genmath.analytic import PPCA  # noqa: E402
from genmath.core.elbo import elbo, iwae  # noqa: E402


def _setup(batch: int, dim: int, latent: int):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(dim, latent, generator=g, dtype=torch.float64)
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    ppca = PPCA(W, b, torch.tensor(0.5, dtype=torch.float64))
    x = ppca.sample(batch, generator=g)
    post_mean, post_cov = ppca.posterior(x)
    # q: the posterior mean shifted by half a posterior std, diagonal scales 1.5x the posterior
    # marginal stds: a q whose gap KL(q || p(z|x)) is known and moderate
    post_std = post_cov.diagonal().sqrt()
    shift = (0.5 * post_std).clone().requires_grad_(True)
    log_scale = torch.log(1.5 * post_std).clone().requires_grad_(True)
    return ppca, x, post_mean.detach(), post_cov, shift, log_scale


def _exact_elbo(ppca, x, post_mean, post_cov, shift, log_scale) -> float:
    """sum_b [log p(x_b) - KL(q_b || p(z | x_b))], by the Gaussian KL formula."""
    k = post_cov.shape[0]
    q_cov = torch.diag(torch.exp(2 * log_scale.detach()))
    prec = torch.linalg.inv(post_cov)
    diff = shift.detach().expand_as(post_mean)  # q mean - posterior mean
    kl = 0.5 * (
        torch.trace(prec @ q_cov)
        + torch.einsum("bi,ij,bj->b", diff, prec, diff)
        - k
        + torch.logdet(post_cov)
        - torch.logdet(q_cov)
    )
    return float((ppca.log_prob(x) - kl).sum())


def _pyro_programs(ppca, post_mean, shift, log_scale):
    W, b, s = ppca.W, ppca.b, ppca.noise_std
    k = W.shape[1]

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pdist.Normal(x.new_zeros(k), x.new_ones(k)).to_event(1))
            pyro.sample("x", pdist.Normal(z @ W.T + b, s).to_event(1), obs=x)

    def guide(x):
        sh = pyro.param("shift", shift)
        ls = pyro.param("log_scale", log_scale)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pdist.Normal(post_mean + sh, torch.exp(ls)).to_event(1))

    return model, guide


def _genmath_programs(ppca, post_mean, shift, log_scale):
    def encoder(x):
        loc = post_mean + shift
        return D.Independent(D.Normal(loc, torch.exp(log_scale).expand_as(loc)), 1)

    prior = D.Independent(
        D.Normal(
            torch.zeros(ppca.latent_dim, dtype=torch.float64),
            torch.ones(ppca.latent_dim, dtype=torch.float64),
        ),
        1,
    )
    return encoder, ppca.likelihood, prior


def _interleaved(fns: dict, rounds: int) -> _harness.Timings:
    return _harness.compare(fns, rounds=rounds)


def main(quick: bool = False, env: dict | None = None) -> str:
    batch, dim, latent = 256, 16, 4
    ppca, x, post_mean, post_cov, shift, log_scale = _setup(batch, dim, latent)
    exact = _exact_elbo(ppca, x, post_mean, post_cov, shift, log_scale)
    log_px = float(ppca.log_prob(x).sum())
    model, guide = _pyro_programs(ppca, post_mean, shift, log_scale)
    encoder, decoder, prior = _genmath_programs(ppca, post_mean, shift, log_scale)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    g = torch.Generator().manual_seed(1)
    rounds = 5 if quick else 21
    value_reps = 20 if quick else 200

    rows, accuracy = [], []
    cases = [("ELBO", 1), ("ELBO", 16), ("ELBO-MC", 1), ("ELBO-MC", 16), ("IWAE", 16), ("IWAE", 64)]
    for kind, n in cases:
        if kind.startswith("ELBO"):
            analytic = kind == "ELBO"
            matching = TraceMeanField_ELBO if analytic else Trace_ELBO
            pyro_obj = matching(num_particles=n, vectorize_particles=True, max_plate_nesting=1)

            def gm_value(n=n, kl="analytic" if analytic else "mc"):
                return elbo(x, encoder, decoder, prior, n, g, kl=kl).sum()

            def pyro_value(obj=pyro_obj):
                return -obj.differentiable_loss(model, guide, x)
        else:
            pyro_obj = RenyiELBO(
                alpha=0, num_particles=n, vectorize_particles=True, max_plate_nesting=1
            )

            def gm_value(n=n):
                return iwae(x, encoder, decoder, prior, n, g).sum()

            def pyro_value(obj=pyro_obj):
                return torch.tensor(-obj.loss(model, guide, x))

        def gm_grad(fn=gm_value):
            shift.grad = log_scale.grad = None
            (-fn()).backward()

        if kind.startswith("ELBO"):

            def pyro_grad(obj=pyro_obj):
                shift.grad = log_scale.grad = None
                obj.differentiable_loss(model, guide, x).backward()
        else:

            def pyro_grad(obj=pyro_obj):
                shift.grad = log_scale.grad = None
                obj.loss_and_grads(model, guide, x)

        with torch.no_grad():
            forward = _interleaved({"genmath": gm_value, "pyro": pyro_value}, rounds)
        backward = _interleaved({"genmath": gm_grad, "pyro": pyro_grad}, rounds)
        label = {
            "ELBO": "ELBO, closed-form KL vs TraceMeanField_ELBO",
            "ELBO-MC": "ELBO, Monte-Carlo KL vs Trace_ELBO",
            "IWAE": "IWAE vs RenyiELBO(alpha=0)",
        }[kind]
        rows.append(
            (
                f"{label} (S = {n})",
                forward.median("genmath") * 1e3,
                forward.median("pyro") * 1e3,
                forward.ratio("genmath", "pyro"),
                backward.median("genmath") * 1e3,
                backward.median("pyro") * 1e3,
                backward.ratio("genmath", "pyro"),
            )
        )
        with torch.no_grad():
            gm_vals = np.array([float(gm_value()) for _ in range(value_reps)])
            py_vals = np.array([float(pyro_value()) for _ in range(value_reps)])
        se = lambda v: v.std(ddof=1) / math.sqrt(len(v))  # noqa: E731
        z = (gm_vals.mean() - py_vals.mean()) / math.hypot(se(gm_vals), se(py_vals))
        accuracy.append((rows[-1][0], gm_vals.mean(), se(gm_vals), py_vals.mean(), se(py_vals), z))

    lines = [
        "# ELBO / IWAE: genmath vs pyro",
        "",
        _harness.describe(env or {}) if env else "",
        "",
        f"PPCA model, d = {dim}, latent k = {latent}, batch B = {batch}, float64, CPU, 1 thread "
        f"(torch {torch.__version__}, pyro {pyro.__version__}, genmath {genmath.__version__}, "
        f"{platform.processor() or platform.machine()}). Same model, same Gaussian q (posterior "
        "mean shifted by half a posterior std, diagonal scales 1.5 times the posterior stds), same data; "
        "pyro's estimators vectorised over particles. Ratio < 1: genmath is faster.",
        "",
        "| estimator | genmath value (ms) | pyro value (ms) | ratio | genmath value+grad (ms) | pyro value+grad (ms) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]} | {r[4]:.2f} | {r[5]:.2f} | {r[6]} |"
        )
    lines += [
        "",
        f"Accuracy (sum over the batch, mean ± s.e. over {value_reps} estimates). Exact: "
        f"log p(x) = {log_px:.3f}; ELBO = log p(x) − KL(q ‖ p(z|x)) = {exact:.3f}. IWAE must lie in "
        "[ELBO, log p(x)] and approach log p(x) as k grows. z: genmath − pyro in standard errors.",
        "",
        "| estimator | genmath | pyro | z (genmath − pyro) | genmath − exact ELBO |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, gm, gse, py, pse, z in accuracy:
        lines.append(
            f"| {name} | {gm:.3f} ± {gse:.3f} | {py:.3f} ± {pse:.3f} | {z:+.2f} | {gm - exact:+.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    environment = _harness.setup(torch.float64)
    _harness.write("elbo", main(args.quick, environment), args.update)
