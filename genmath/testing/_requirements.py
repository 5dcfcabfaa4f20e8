"""Optional packages of the adapters, imported on first use with an install hint."""

from __future__ import annotations

import importlib

__all__ = ["require", "CONFORMANCE_EXTRA"]

CONFORMANCE_EXTRA = "pip install 'genmath[conformance]'"

_HINTS = {
    "diffusers": CONFORMANCE_EXTRA,
    "zuko": CONFORMANCE_EXTRA,
    "flow_matching": CONFORMANCE_EXTRA,
    "flow-matching": CONFORMANCE_EXTRA,
    "torchsde": CONFORMANCE_EXTRA,
    "tqdm": CONFORMANCE_EXTRA,
    "torchdiffeq": "pip install torchdiffeq",
    # k-diffusion's own requirements pull torchvision, wandb and more; its samplers need none
    "k_diffusion": CONFORMANCE_EXTRA + " && pip install --no-deps k-diffusion==0.1.1.post1",
}


def require(module: str, package: str | None = None):
    """Import ``module`` or raise `ImportError` naming the package and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        hint = _HINTS.get(top) or _HINTS.get(package or "") or f"pip install {package or top}"
        raise ImportError(
            f"this adapter needs the package {package or module!r}, which is not installed "
            f"(or failed to import: {error}); install it with: {hint}"
        ) from error
