"""A stop-gradient for sympy: the value of its argument, with derivative zero.

`torch.Tensor.detach()` (and `torch.no_grad()`) change what a loss *trains* without changing
its value. To derive the gradient a loss really has, write the stopped quantity as
``stop_gradient(y)``: sympy then differentiates the loss with ``y`` held constant
(``fdiff`` is zero), and `release_stop_gradient` puts the plain value back once the
derivatives are taken. A binding holds the autograd gradient of the code to that derivative
on a case where the other placement of the stop-gradient gives a different gradient, so a
removed (or misplaced) ``.detach()`` fails verification.
"""

from __future__ import annotations

import sympy as sp

from ._engine import sound_rewrite

__all__ = ["StopGradient", "stop_gradient", "release_stop_gradient"]


class StopGradient(sp.Function):
    r"""$\operatorname{sg}(y)$: equal to $y$, with $\partial\operatorname{sg}(y)/\partial y = 0$."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(0)

    def _eval_evalf(self, prec):
        return self.args[0].evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    # numeric printers (lambdify): a stop-gradient is the identity on values
    def _mpmathcode(self, printer):
        return printer._print(self.args[0])

    _pythoncode = _numpycode = _lambdacode = _mpmathcode

    def _latex(self, printer, exp=None):
        body = r"\operatorname{sg}\left(" + printer._print(self.args[0]) + r"\right)"
        return body if exp is None else body + "^{" + str(exp) + "}"


def stop_gradient(expr):
    """``expr`` with every free symbol wrapped in `StopGradient` (a detached tensor)."""
    return sp.sympify(expr).xreplace({s: StopGradient(s) for s in sp.sympify(expr).free_symbols})


@sound_rewrite(
    "a stop-gradient is the identity on values: once the derivatives are taken (with the "
    "stopped quantity held constant), sg(y) is replaced by y"
)
def release_stop_gradient(expr):
    expr = sp.sympify(expr).doit()
    expr = expr.replace(lambda e: isinstance(e, StopGradient), lambda e: e.args[0])
    return sp.cancel(sp.expand(expr))
