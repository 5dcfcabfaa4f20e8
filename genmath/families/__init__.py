"""Model families, one module per family, each a short composition of the core abstractions.

Among them:

* `genmath.families.vae` — VAE, β-VAE, IWAE and the linear-Gaussian VAE (probabilistic PCA):
  the ELBO and IWAE bounds of `genmath.core.elbo` with encoder/decoder modules.
* `genmath.families.tokenizer` — vector quantization (VQ-VAE) and finite scalar
  quantization (FSQ): nearest-code assignment with the straight-through gradient.
* `genmath.families.autoregressive` — exact likelihood by the chain rule: MADE, PixelCNN
  masked convolutions, Gaussian autoregression from a Cholesky factor, ancestral sampling.
"""
