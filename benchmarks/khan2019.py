"""Benchmark: ``labelsky reproduce khan2019`` at a size that runs on 2 CPU cores in under an hour.

Writes benchmarks/results/khan2019.json and khan2019.md (Table II, recursion, cluster purity, timings).
The paper's direction to test: HP accuracy >= 99 % in both surveys, FO top-50 % >= 96 %, and recursive
training raises the target (DES) FO accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/khan2019"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from labelsky.reproduce.khan2019 import KhanConfig, run_khan2019

    kc = KhanConfig.quick(workers=a.workers, seed=a.seed) if a.quick else KhanConfig(n_objects=a.n,
                                                                                    workers=a.workers, seed=a.seed)
    with CpuMonitor() as mon:
        res = run_khan2019(a.work_dir, kc, progress=False)
    name = "khan2019_quick" if a.quick else "khan2019"
    r0, rl = res["rounds"][0], res["rounds"][-1]
    keys = ("n", "accuracy", "f1", "top50_accuracy")
    metrics = {
        "sizes": res["sizes"],
        "table_ii_round0": {k: {m: v[m] for m in keys} for k, v in r0["table"].items()},
        "table_ii_last_round": {k: {m: v[m] for m in keys} for k, v in rl["table"].items()},
        "recursion_fo_des": [{"round": r["round"], "accuracy": r["table"]["FO DES"]["accuracy"],
                              "top50_accuracy": r["table"]["FO DES"]["top50_accuracy"],
                              "pseudo_labels": r.get("pseudo_labels")} for r in res["rounds"]],
        "unlabelled_des_round0": r0["unlabelled"],
        "weights_used": r0["weights_used"],
        "config": res["config"],
        "timings_s": res["timings"],
        "cpu": mon.as_dict(),
    }
    md = ((a.work_dir / "table_ii.md").read_text()
          + f"\nSizes: {json.dumps(res['sizes'])}.  \nTotal time {res['timings']['total_s'] / 60:.1f} min "
          f"(simulation {res['timings']['simulate_s']:.0f} s, backbone pretraining {res['timings']['pretrain_s']:.0f} s)."
          f" Figures: {a.work_dir}/figures/tsne.png, recursion.png.\n")
    write_results(name, metrics, md)
    print(md)

if __name__ == "__main__":
    main()
