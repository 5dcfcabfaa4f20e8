"""Run figure scripts one after another in this one process (``--quick --out``), and report.

Usage: ``python _figure_runner.py REPORT.json OUTDIR SCRIPT...``. Each script runs as
``__main__`` through `runpy`, with the process state it could have changed reset before it
(default dtype, the global random stream, open figures, ``sys.argv``), so the scripts stay as
independent as separate processes while paying the interpreter's and torch's start-up once.
"""

from __future__ import annotations

import json
import pathlib
import runpy
import sys
import time
import traceback


def main() -> None:
    report_path, out_dir, *scripts = sys.argv[1:]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    default_dtype = torch.get_default_dtype()
    report = {}
    for script in scripts:
        path = pathlib.Path(script)
        out = pathlib.Path(out_dir) / path.name.replace(".py", ".png")
        torch.set_default_dtype(default_dtype)
        torch.manual_seed(0)
        plt.close("all")
        sys.argv = [str(path), "--quick", "--out", str(out)]
        start = time.process_time()
        try:
            runpy.run_path(str(path), run_name="__main__")
            ok, error = True, ""
        except SystemExit as exc:
            ok, error = exc.code in (None, 0), f"SystemExit({exc.code})"
        except BaseException:  # noqa: BLE001  (the report says what failed)
            ok, error = False, traceback.format_exc()[-3000:]
        report[path.name] = {
            "ok": ok,
            "error": error,
            "out": str(out),
            "cpu_seconds": round(time.process_time() - start, 2),
        }
        pathlib.Path(report_path).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
