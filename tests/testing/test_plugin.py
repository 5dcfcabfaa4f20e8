"""The pytest plugin: its fixtures work in any suite that has genmath installed (this one too)."""

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from genmath.testing import ConformanceError, Oracle, as_sampler, genmath_sampler


def test_the_plugin_is_registered_as_a_pytest_entry_point():
    entry = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "genmath"]
    assert [e.value for e in entry] == ["genmath.testing.pytest_plugin"]


def test_fixtures_give_the_oracles(genmath_oracle, genmath_gaussian_oracle, genmath_generator):
    assert isinstance(genmath_oracle, Oracle) and genmath_oracle.data.n_components == 3
    assert genmath_gaussian_oracle._closed_form_flow
    assert genmath_generator.initial_seed() == 20240601


@pytest.mark.parametrize("genmath_oracle", ["gaussian"], indirect=True)
def test_checks_are_strict_and_bound_to_the_oracle(genmath_checks, genmath_oracle):
    report = genmath_checks.sampler(genmath_sampler("heun"), steps=(16, 32, 64), n=64, expected_order=2)
    assert report.passed and "Gaussian" in report.notes[-1]

    def euler_claiming_heun(model, x, steps):
        import genmath

        return genmath.sample_ode(model, x, steps=steps, method="euler", path=genmath_oracle.path)

    with pytest.raises(ConformanceError, match="lower order than claimed"):
        genmath_checks.sampler(as_sampler(euler_claiming_heun), steps=(16, 32, 64), n=64, expected_order=2)
    lenient = genmath_checks.sampler(
        as_sampler(euler_claiming_heun), steps=(16, 32, 64), n=64, expected_order=2, strict=False
    )
    assert not lenient.passed


def test_a_users_suite_gets_the_fixtures_and_the_reports(tmp_path):
    test_file = tmp_path / "test_users_sampler.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import pytest
            from genmath.testing import genmath_sampler

            @pytest.mark.parametrize("genmath_oracle", ["gaussian"], indirect=True)
            def test_my_sampler(genmath_checks):
                genmath_checks.sampler(genmath_sampler("dpm++2m"), steps=(8, 16), n=32)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--genmath-reports", str(test_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "genmath conformance reports" in result.stdout
    assert "deterministic sampler: genmath dpm++2m" in result.stdout
