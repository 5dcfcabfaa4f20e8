"""The mutation runner counts a mutant as caught only when the same command passes on the
clean copy (`tools/mutation.py`'s `Judge`): a check that fails anyway must not read as a catch.
Judged here with a fake runner, so nothing is planted and nothing slow runs."""

import importlib.util
import pathlib
import sys

TOOLS = pathlib.Path(__file__).resolve().parents[2] / "tools"


def _mutation_module():
    spec = importlib.util.spec_from_file_location("genmath_mutation_tool", TOOLS / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


class _FakeRunner:
    """Fails a command when the file holds a text it is told to fail on; records each call
    with the file's content at that moment (clean or mutated)."""

    def __init__(self, path, fails_on):
        self.path, self.fails_on, self.calls = path, fails_on, []

    def __call__(self, cmd, cwd, timeout, env=None):
        text = self.path.read_text()
        self.calls.append((tuple(cmd), text))
        return any(bad in text for bad in self.fails_on), f"ran on {text!r}"


def test_caught_only_when_the_clean_copy_passes(tmp_path):
    judge_cls = _mutation_module().Judge
    path = tmp_path / "formula.py"
    clean, mutated = "y = a + b", "y = a - b"
    path.write_text(mutated)
    files = {"path": path, "original": clean, "mutated": mutated}

    # the check fails on the mutant and passes clean: caught, and the file is left mutated
    runner = _FakeRunner(path, fails_on=["a - b"])
    judge = judge_cls(runner)
    assert judge.verdict(["check-1"], tmp_path, 10, **files)[0] == "caught"
    assert path.read_text() == mutated
    assert [text for _, text in runner.calls] == [clean, mutated]

    # the check passes on the mutant: missed
    runner = _FakeRunner(path, fails_on=[])
    assert judge_cls(runner).verdict(["check-1"], tmp_path, 10, **files)[0] == "missed"

    # the check fails on the clean copy too: not a catch, whatever it does on the mutant
    runner = _FakeRunner(path, fails_on=["y ="])
    judge = judge_cls(runner)
    verdict, log = judge.verdict(["check-2"], tmp_path, 10, **files)
    assert verdict == "baseline-failed"
    assert clean in log
    assert len(runner.calls) == 1  # the mutant is not run at all


def test_each_selection_runs_clean_once(tmp_path):
    judge_cls = _mutation_module().Judge
    path = tmp_path / "formula.py"
    path.write_text("x")
    runner = _FakeRunner(path, fails_on=["mutant"])
    judge = judge_cls(runner)
    for mutated in ("mutant 1", "mutant 2"):
        path.write_text(mutated)
        assert judge.verdict(["same"], tmp_path, 10, path=path, original="x", mutated=mutated)[0] == "caught"
    assert judge.verdict(["other"], tmp_path, 10, path=path, original="x", mutated="mutant 2")[0] == "caught"
    clean_runs = [cmd for cmd, text in runner.calls if text == "x"]
    assert clean_runs == [("same",), ("other",)]


def test_summary_keeps_baseline_failures_apart():
    report = _mutation_module().summarize
    rows = [
        {"kind": "sign", "file": "f.py", "verify": True, "tests": True,
         "verify_verdict": "caught", "tests_verdict": "caught"},
        {"kind": "sign", "file": "f.py", "verify": False, "tests": False,
         "verify_verdict": "baseline-failed", "tests_verdict": "missed"},
    ]
    tally = report(rows)["all"]
    assert (tally["mutants"], tally["verify"], tally["baseline_failed"]) == (2, 1, 1)
