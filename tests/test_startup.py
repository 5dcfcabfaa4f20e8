"""`import genmath` stays cheap: public names resolve on first use, heavy modules are not
imported until needed, and the command line's `--version` needs none of them."""

import subprocess
import sys

import genmath


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys\n"
        "print(','.join(m for m in ('sympy', 'scipy', 'torchdiffeq', 'ot', 'mpmath') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(filter(None, out.stdout.strip().split(",")))


def test_import_genmath_and_core_names_loads_no_heavy_module():
    assert _imported_after("import genmath") == set()
    code = "import genmath\nfrom genmath import GaussianPath, sample_ode, ode_log_likelihood, elbo"
    assert _imported_after(code) == set()


def test_heavy_modules_load_on_first_use():
    code = "from genmath import GaussianPath\nfrom genmath.schedules import VP\nGaussianPath(VP())"
    assert "sympy" in _imported_after(code)


def test_every_public_name_resolves_and_unknown_names_raise():
    for name in genmath.__all__:
        assert getattr(genmath, name) is not None, name
    assert set(genmath.__all__) <= set(dir(genmath))
    try:
        genmath.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_version_from_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "genmath", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"genmath {genmath.__version__}"
