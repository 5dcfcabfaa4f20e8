"""The one timing harness of every benchmark: thread CPU time, warm-up, contenders alternated.

On a shared machine wall-clock time measures the other processes as much as the code; the CPU
time of the benchmarking thread (`time.thread_time`) does not, provided the work stays on
that thread. So the harness

* runs torch on **one thread** (`torch.set_num_threads(1)`) and checks that the work really
  stays on the timed thread: [`thread_share`][] compares the thread's CPU time with the
  process's over a matrix product (1.00 means every cycle was on the timed thread);
* keeps freed memory in the process (`mallopt`: no `mmap` for large blocks, no trimming), so
  a call does not pay for fresh pages that another call of the same size got warm — the
  "allocator effect" that once made a 2 MiB output look 20× slower on one side;
* warms every contender up, then calibrates one loop length (calls per timing) from the
  slowest contender, so each timing lasts at least `min_seconds` (far above the clock's
  resolution), and switches the cyclic garbage collector off inside each timed loop (as
  `timeit` does);
* **alternates** the contenders in one process on the same inputs, rotating their order each
  round, for many interleaved rounds;
* reports, for a pair, the **median of the per-round ratios** and their interquartile range:
  a load spike inflates one round of both contenders, and the median ignores a minority of
  disturbed rounds.

Results go to ``benchmarks/results/new/`` unless ``--update`` is given, so running a benchmark
never overwrites the committed results (``benchmarks/results/*.md``, which the docs show) by
accident.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import gc
import importlib.util
import pathlib
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable

import torch

RESULTS = pathlib.Path(__file__).parent / "results"

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def warm_allocator() -> bool:
    """Ask glibc to keep freed memory (no per-block `mmap`, no trimming), so repeated calls
    reuse warm pages instead of faulting fresh ones in. Returns whether it took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        big = 1 << 30
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, big)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, big)
        )
    except (OSError, AttributeError):
        return False


def thread_share() -> float:
    """CPU time of this thread over CPU time of the process during a 256×256 matrix-product
    loop: 1.00 means torch ran on the timed thread alone (the condition for thread CPU time to
    measure the whole cost of a call)."""
    a = torch.randn(256, 256, dtype=torch.float64)
    process, thread = time.process_time(), time.thread_time()
    for _ in range(40):
        a = (a @ a).tanh_()
    return (time.thread_time() - thread) / max(time.process_time() - process, 1e-9)


def setup(dtype: torch.dtype = torch.float64) -> dict:
    """One torch thread, warm allocator, a default dtype; returns what the preamble states."""
    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    warm = warm_allocator()
    return {
        "threads": torch.get_num_threads(),
        "thread_share": thread_share(),
        "warm_allocator": warm,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def describe(env: dict) -> str:
    """The sentence every results file starts with: how its times were taken."""
    return (
        f"torch {env['torch']}, {env['machine']}, {env['threads']} torch thread "
        f"(work on the timed thread: {env['thread_share']:.2f} of the process's CPU time), "
        f"allocator {'kept warm' if env['warm_allocator'] else 'default'}. Times are CPU time of "
        "the benchmarking thread (`time.thread_time`) per call; contenders alternate in one "
        "process on the same inputs, order rotated each round; ratio = median of the per-round "
        "ratios genmath / anchor with its interquartile range in brackets (< 1: genmath faster)."
    )


@dataclasses.dataclass(frozen=True)
class Ratio:
    """Median of per-round ratios and its interquartile range."""

    median: float
    q1: float
    q3: float
    rounds: int

    def __str__(self) -> str:
        return f"{self.median:.2f} [{self.q1:.2f}–{self.q3:.2f}]"

    @property
    def spread(self) -> float:
        return self.q3 - self.q1


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


@dataclasses.dataclass
class Timings:
    """Per-round seconds per call of each contender."""

    seconds: dict[str, list[float]]
    number: int

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, ours: str, theirs: str) -> Ratio:
        rounds = [a / b for a, b in zip(self.seconds[ours], self.seconds[theirs], strict=True)]
        q1, median, q3 = _quartiles(rounds)
        return Ratio(median, q1, q3, len(rounds))


def _loop_seconds(fn: Callable[[], object], number: int) -> float:
    # the cyclic garbage collector is off while a loop runs (as in `timeit`): a collection
    # triggered by one contender's allocations would otherwise be charged to whichever runs
    gc.disable()
    try:
        start = time.thread_time()
        for _ in range(number):
            fn()
        return (time.thread_time() - start) / number
    finally:
        gc.enable()


def compare(
    contenders: dict[str, Callable[[], object]],
    *,
    rounds: int = 15,
    min_seconds: float = 0.02,
    warmup: int = 2,
    number: int | None = None,
) -> Timings:
    """Time each contender (a no-argument callable) in interleaved rounds.

    Every contender is called `warmup` times first; then one loop length `number` (calls per
    timing) is chosen so the slowest contender's loop lasts `min_seconds`, and each round
    times every contender once, in an order rotated by one each round."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    if number is None:
        slowest = max(_loop_seconds(contenders[name], 1) for name in names)
        number = max(1, int(min_seconds / max(slowest, 1e-7)))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds[name].append(_loop_seconds(contenders[name], number))
    return Timings(seconds, number)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` and ``--update``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="few repeats and sizes (a smoke run)")
    p.add_argument(
        "--update",
        action="store_true",
        help="write benchmarks/results/<name>.md (the committed results the docs show) instead "
        "of benchmarks/results/new/<name>.md",
    )
    return p


def write(name: str, text: str, update: bool) -> pathlib.Path:
    """Write a results file: the committed one with `update`, else a fresh one under new/."""
    out = RESULTS / f"{name}.md" if update else RESULTS / "new" / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.rstrip() + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(RESULTS.parent.parent)}", file=sys.stderr)
    return out


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table; `align` is one character per column, `l` or `r`."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def k_diffusion_sampling():
    """k-diffusion's `sampling` module, loaded from its installed file without running the
    package's `__init__` (which imports torchvision: no CPU wheel of it matches torch here).

    `sampling.py` needs `k_diffusion.utils`, whose module-level import of
    `torchvision.transforms.functional` is used only by image helpers; when torchvision is
    absent a placeholder module stands in for that import (any use of it raises)."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed: `make bench` installs it")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    if importlib.util.find_spec("torchvision") is None:
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
            placeholder = types.ModuleType(name)
            placeholder.__getattr__ = _torchvision_missing  # type: ignore[attr-defined]
            sys.modules.setdefault(name, placeholder)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules[
            "torchvision.transforms.functional"
        ]
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(root)]
    sys.modules.setdefault("k_diffusion", package)
    for sub in ("utils", "sampling"):
        sub_spec = importlib.util.spec_from_file_location(f"k_diffusion.{sub}", root / f"{sub}.py")
        module = importlib.util.module_from_spec(sub_spec)
        sys.modules[f"k_diffusion.{sub}"] = module
        sub_spec.loader.exec_module(module)
        setattr(sys.modules["k_diffusion"], sub, module)
    return sys.modules["k_diffusion.sampling"]


def _torchvision_missing(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"torchvision is not installed (k-diffusion's image helper {name!r})")
