"""Call every public callable of genmath with one bad argument at a time and classify what
happens (issue 18).

The valid calls and the kinds of their arguments live in ``tests/property/api_cases_*.py``
(shared with the property-based tests); ``tests/property/contract.py`` says what each kind
of bad value must produce. Every trial is classified as

* ``clear``: a ValueError/TypeError raised by genmath that names the argument;
* ``other``: a raw torch/Python/scipy error, or a genmath error naming the wrong argument;
* ``nonfinite``: NaN or inf returned silently (counted apart when the input was finite);
* ``shape``: a wrong shape or dtype returned (float64 results for float32 data);
* ``accepted``: an invalid value accepted, or a NaN turned into a finite, plausible output;
* ``ok``: an outcome the contract allows (an empty result for an empty batch, NaN
  propagated from NaN input, float32 results for float32 data).

Usage::

    python tools/bad_input_sweep.py [--only SUBSTRING] [--show CATEGORY ...] [--json PATH]

It also lists the public callables (``__all__`` of genmath and its public modules, and the
public methods of public classes) that no case covers. Exit status 1 if any trial is not
``clear`` or ``ok``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "property"))

import torch  # noqa: E402

torch.set_num_threads(1)

import api_cases_core  # noqa: E402, F401  (registers cases)
import api_cases_flows  # noqa: E402, F401
import api_cases_models  # noqa: E402, F401
import api_cases_paths  # noqa: E402, F401
import api_cases_seminar  # noqa: E402, F401
from contract import (  # noqa: E402
    CASES,
    Spec,
    baseline_of,
    covered_names,
    public_callables,
    run_trial,
    trials,
)

BAD = ("other", "nonfinite", "shape", "accepted")
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="only cases whose name contains this")
    parser.add_argument("--show", nargs="*", default=list(BAD), help="categories to list")
    parser.add_argument("--json", help="write every outcome to this file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_default_dtype(torch.float64)
    spec = Spec()
    start = time.thread_time()
    outcomes, broken = [], []
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    for item in cases:
        try:
            call = item.build(spec)
            baseline = baseline_of(call, spec.batch)
        except Exception as error:  # noqa: BLE001
            broken.append((item.name, f"{type(error).__name__}: {str(error)[:200]}"))
            continue
        for argument, mutation in trials(call, spec):
            # a fresh call per trial: a model's state (ActNorm's initialisation, persistent
            # chains) must not carry from one trial into the next
            fresh = item.build(spec)
            outcomes.append(run_trial(item.name, fresh, argument, mutation, baseline))
    seconds = time.thread_time() - start

    counts = collections.Counter(o.category for o in outcomes)
    nonfinite_finite = sum(1 for o in outcomes if o.category == "nonfinite" and o.finite_input)
    for category in args.show:
        rows = [o for o in outcomes if o.category == category]
        if rows:
            print(f"\n== {category} ({len(rows)})")
            for o in rows:
                flag = " [finite input]" if category == "nonfinite" and o.finite_input else ""
                print(f"  {o.case}  {o.argument}={o.mutation} ({o.expect}){flag}: {o.detail}")
    if broken:
        print(f"\n== valid calls that fail ({len(broken)})")
        for name, why in broken:
            print(f"  {name}: {why}")
    names = public_callables()
    missing = sorted(names - covered_names([c.name for c in CASES]))
    covered = len(names) - len(missing)
    print(f"\n== public callables without a case ({len(missing)} of {len(names)})")
    for name in missing:
        print(f"  {name}")
    print(
        f"\n{len(outcomes)} trials over {len(cases) - len(broken)} valid calls "
        f"({covered} of {len(names)} public callables) in {seconds:.0f} s CPU: "
        f"{counts['clear']} clear, {counts['other']} other error, "
        f"{counts['nonfinite']} silent NaN/inf ({nonfinite_finite} from finite input), "
        f"{counts['shape']} wrong shape/dtype, {counts['accepted']} accepted, {counts['ok']} ok"
    )
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    return 1 if broken or any(counts[c] for c in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
