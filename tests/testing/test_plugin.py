"""The pytest plugin: its fixtures work in any suite that has genmath installed (this one too)."""

import importlib.metadata
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


def test_a_users_suite_gets_the_fixtures_and_the_reports(tmp_path, monkeypatch, capsys):
    # a user's suite, run in this process (a subprocess would pay torch's import again): the
    # plugin comes from the installed entry point, a correct sampler passes, a first-order one
    # claiming second order fails with the defect named, and --genmath-reports prints both
    (tmp_path / "test_users_sampler.py").write_text(
        textwrap.dedent(
            """
            import pytest
            import genmath
            from genmath.testing import as_sampler, genmath_sampler

            @pytest.mark.parametrize("genmath_oracle", ["gaussian"], indirect=True)
            def test_my_sampler(genmath_checks):
                genmath_checks.sampler(genmath_sampler("dpm++2m"), steps=(8, 16), n=32)

            @pytest.mark.parametrize("genmath_oracle", ["gaussian"], indirect=True)
            def test_my_broken_sampler(genmath_checks, genmath_oracle):
                def euler(model, x, steps):
                    return genmath.sample_ode(model, x, steps=steps, method="euler", path=genmath_oracle.path)

                genmath_checks.sampler(as_sampler(euler), steps=(16, 32, 64), n=32, expected_order=2)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--genmath-reports", "test_users_sampler.py"]
    )
    out = capsys.readouterr().out
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "1 failed, 1 passed" in out, out
    assert "FAILED test_users_sampler.py::test_my_broken_sampler" in out, out
    assert "lower order than claimed" in out, out
    assert "genmath conformance reports" in out, out
    assert "deterministic sampler: genmath dpm++2m" in out, out
