"""Modules imported on first use, so that `import genmath` costs little beyond torch.

sympy (about 0.8 s), scipy's optimizers and statistics (about 1.5 s) and torchdiffeq (which
imports scipy; about 0.8 s) are needed only when a schedule is built, a derivation is
verified, an assignment is solved or an ODE is integrated by torchdiffeq. Their modules hold
`lazy_import("sympy")` instead of `import sympy`; the first attribute access imports it.
"""

from __future__ import annotations

import importlib
import types

__all__ = ["lazy_import"]


class _LazyModule(types.ModuleType):
    """Stands for a module until an attribute is read, then imports it and delegates."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_genmath_target"] = None

    def _genmath_load(self) -> types.ModuleType:
        target = self.__dict__["_genmath_target"]
        if target is None:
            target = importlib.import_module(self.__name__)
            self.__dict__["_genmath_target"] = target
        return target

    def __getattr__(self, attribute: str):
        return getattr(self._genmath_load(), attribute)

    def __repr__(self) -> str:
        loaded = self.__dict__["_genmath_target"] is not None
        return f"<lazily imported module {self.__name__!r}{' (loaded)' if loaded else ''}>"


def lazy_import(name: str) -> types.ModuleType:
    """A stand-in for ``importlib.import_module(name)`` that imports on first attribute access."""
    return _LazyModule(name)
