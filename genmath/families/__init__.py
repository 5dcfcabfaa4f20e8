"""Model families, one module per family, each a short composition of the core abstractions.

Import a family from its module (`genmath.families.diffusion.DDPM`, ...):

* `vae` — VAE, β-VAE, IWAE and the linear-Gaussian VAE (probabilistic PCA): the ELBO and
  IWAE bounds of `genmath.core.elbo` with encoder/decoder modules.
* `tokenizer` — vector quantization (VQ-VAE) and finite scalar quantization (FSQ):
  nearest-code assignment with the straight-through gradient.
* `autoregressive` — exact likelihood by the chain rule: MADE, PixelCNN masked
  convolutions, Gaussian autoregression from a Cholesky factor, ancestral sampling.
* `flows`, `residual`, `cnf` — RealNVP, NSF, MAF/IAF, planar, Glow; invertible residual
  flows; continuous normalizing flows (FFJORD): the bijections of
  `genmath.core.change_of_variables`, `genmath.divergence` and `genmath.ode_log_likelihood`.
* `gan`, `ebm` — adversarial losses with the divergences they bound; energy-based models
  sampled by Langevin dynamics (`genmath.sample_sde`) and trained by contrastive divergence
  or score matching.
* `diffusion`, `denoisers` — DDPM, DDIM, score SDEs, EDM, classifier-free guidance: a
  Gaussian path, a network in one of the five parameterizations, the reverse-SDE family and
  the path ELBO; small MLP and U-Net denoisers.
* `flow_matching`, `consistency`, `meanflow` — conditional flow matching, rectified flow,
  consistency models and MeanFlow on the same Gaussian path and probability-flow ODE.
* `discrete_diffusion` — D3PM, continuous-time masked diffusion (with importance-sampled
  times and ReMDM remasking) and discrete flow matching on the discrete paths of
  `genmath.core.discrete`.
* `mar` — autoregression with continuous tokens: MAR's per-token diffusion head and Diffusion
  Forcing's per-token noise levels, on the Gaussian path and `genmath.sample_ode`, with an
  exact linear-Gaussian sequence.
* `distillation` — SDS, VSD and DMD: a diffusion model distilled into a one-step generator by
  surrogate losses on the path's noised samples and converted predictions.
* `schrodinger_bridge` — the Gaussian Schrödinger bridge in closed form and iterative
  Markovian fitting (DSBM in exact form) converging to it.
"""
