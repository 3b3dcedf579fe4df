"""Benchmark: the README's main job, ``labelsky demo``, on the embedded default data.

Runs ``labelsky demo`` in a child process on a fresh output folder (waiting first for idle CPUs), and records
its wall time, the CPU other programs took meanwhile, Table II (accuracy per test set) and the DES full-overlap
accuracy before and after the recursion round, from the demo's own ``summary.json``. The README's numbers for
the demo come from ``results/demo.json``. Writes benchmarks/results/demo.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, wait_for_idle, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/demo"))
    ap.add_argument("--n", type=int, default=None, help="galaxies (default: the demo's own default)")
    ap.add_argument("--max-wait-idle", type=float, default=180.0)
    ap.add_argument("--quick", action="store_true", help="a tiny run (120 galaxies) into results/demo_quick.*")
    a = ap.parse_args()
    n = 120 if a.quick else a.n
    out = a.work_dir / "labelsky-demo"
    if out.exists():
        shutil.rmtree(out)  # the benchmark's own scratch folder, never an input
    out.parent.mkdir(parents=True, exist_ok=True)
    idle = wait_for_idle(a.max_wait_idle)
    cmd = [sys.executable, "-m", "labelsky", "demo", "--out", str(out)] + (["--n", str(n)] if n else [])
    with CpuMonitor() as mon:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    table = json.loads((out / "results.json").read_text())["rounds"][0]["table"]
    metrics = {
        "command": " ".join(["labelsky", "demo"] + (["--n", str(n)] if n else [])),
        "wall_s": round(wall, 1), "demo_reported_s": summary["seconds"], "idle_wait": idle,
        "cpu": mon.as_dict(),
        "n_des_galaxies": summary["datasets"]["des"]["n"],
        "table_ii": {k: {"n": v["n"], "accuracy": v["accuracy"]} for k, v in table.items()},
        "fo_des_by_round": summary["fo_des_by_round"],
    }
    rows = [[k, v["n"], f"{100 * v['accuracy']:.2f} %"] for k, v in table.items()]
    fo = summary["fo_des_by_round"]
    md = (f"# labelsky demo\n\n`{metrics['command']}`: {wall / 60:.1f} min wall time "
          f"({100 * mon.as_dict()['other_processes_cpu_frac']:.0f} % of the CPUs used by other programs).\n\n"
          + md_table(["test set", "n", "accuracy"], rows)
          + "\n\nDES full-overlap accuracy by recursion round: " + " → ".join(f"{100 * x:.2f} %" for x in fo) + "\n")
    write_results("demo_quick" if a.quick else "demo", metrics, md)


if __name__ == "__main__":
    main()
