"""pytest plugin: fixtures for the exact oracles and the conformance checks.

Installed with genmath (entry point ``pytest11``), so any test suite can write::

    def test_my_scheduler(genmath_checks):
        genmath_checks.sampler(diffusers_sampler(my_scheduler), expected_order=2)

Fixtures:

* ``genmath_oracle`` — the 2-D Gaussian mixture of the conformance table on CondOT; parametrize
  it indirectly with a preset name (``"mixture"``, ``"gaussian"``) or an `Oracle`;
* ``genmath_gaussian_oracle`` — a correlated 2-D Gaussian (closed-form flow map, fast);
* ``genmath_generator`` — a seeded ``torch.Generator``;
* ``genmath_checks`` — the checks bound to ``genmath_oracle`` and the generator, strict (they raise
  `ConformanceError` naming each defect); every report is kept, and ``--genmath-reports`` prints
  them at the end of the session.
"""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser):
    group = parser.getgroup("genmath")
    group.addoption(
        "--genmath-reports",
        action="store_true",
        default=False,
        help="print every genmath conformance report at the end of the session",
    )


def _preset(name):
    from . import _oracle

    presets = {"mixture": _oracle.mixture_2d, "gaussian": _oracle.gaussian_2d}
    if isinstance(name, _oracle.Oracle):
        return name
    if name not in presets:
        raise ValueError(f"unknown genmath oracle preset {name!r}; known: {sorted(presets)}")
    return presets[name]()


@pytest.fixture
def genmath_oracle(request):
    """An exact oracle (default: the 2-D mixture on CondOT)."""
    return _preset(getattr(request, "param", "mixture"))


@pytest.fixture
def genmath_gaussian_oracle():
    """A correlated 2-D Gaussian on CondOT (its flow map is closed form)."""
    return _preset("gaussian")


@pytest.fixture
def genmath_generator():
    """A seeded generator for the checks' exact draws and the sampler's noise."""
    return torch.Generator().manual_seed(20240601)


class Checks:
    """The conformance checks bound to an oracle and a generator; strict by default."""

    def __init__(self, oracle, generator, reports: list, strict: bool = True):
        self.oracle = oracle
        self.generator = generator
        self.strict = strict
        self._reports = reports

    def _run(self, check, subject, **kwargs):
        kwargs.setdefault("generator", self.generator)
        strict = kwargs.pop("strict", self.strict)
        report = check(subject, **kwargs)
        self._reports.append(report)
        return report.raise_if_failed() if strict else report

    def sampler(self, sampler, **kwargs):
        from ._checks import check_sampler

        return self._run(check_sampler, sampler, oracle=kwargs.pop("oracle", self.oracle), **kwargs)

    def stochastic_sampler(self, sampler, **kwargs):
        from ._checks import check_stochastic_sampler

        return self._run(check_stochastic_sampler, sampler, oracle=kwargs.pop("oracle", self.oracle), **kwargs)

    def likelihood(self, estimator, **kwargs):
        from ._checks import check_likelihood

        return self._run(check_likelihood, estimator, oracle=kwargs.pop("oracle", self.oracle), **kwargs)

    def field(self, model, **kwargs):
        from ._checks import check_field

        return self._run(check_field, model, oracle=kwargs.pop("oracle", self.oracle), **kwargs)

    def distribution(self, distribution, **kwargs):
        from ._distributions import check_distribution

        return self._run(check_distribution, distribution, **kwargs)


@pytest.fixture
def genmath_checks(request, genmath_oracle, genmath_generator):
    """Strict conformance checks against ``genmath_oracle``."""
    reports = request.config.stash.setdefault(_REPORTS, [])
    return Checks(genmath_oracle, genmath_generator, reports)


_REPORTS = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reports = config.stash.get(_REPORTS, [])
    if not reports or not config.getoption("--genmath-reports"):
        return
    terminalreporter.section("genmath conformance reports")
    for report in reports:
        terminalreporter.write_line(str(report))
        terminalreporter.write_line("")
