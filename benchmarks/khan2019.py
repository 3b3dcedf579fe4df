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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one full run per seed; mean and std")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from labelsky.reproduce.khan2019 import KhanConfig, run_khan2019

    runs = []
    mon = CpuMonitor().__enter__()
    for seed in a.seeds:  # results are rewritten after every seed: whatever finished is recorded
        kc = KhanConfig.quick(workers=a.workers, seed=seed) if a.quick else \
            KhanConfig(n_objects=a.n, workers=a.workers, seed=seed)
        runs.append(run_khan2019(a.work_dir / f"seed{seed}", kc, progress=False))
        mon.__exit__(None, None, None)
        report(a, runs, a.seeds[:len(runs)], mon)


def report(a, runs, seeds, mon):
    import numpy as np

    name = "khan2019_quick" if a.quick else "khan2019"
    keys = ("n", "accuracy", "f1", "top50_accuracy")

    def table(res, r):
        return {k: {m: v[m] for m in keys} for k, v in res["rounds"][r]["table"].items()}

    per_seed = [{
        "seed": s, "sizes": res["sizes"], "table_ii_round0": table(res, 0), "table_ii_last_round": table(res, -1),
        "recursion_fo_des": [{"round": r["round"], "accuracy": r["table"]["FO DES"]["accuracy"],
                              "top50_accuracy": r["table"]["FO DES"]["top50_accuracy"],
                              "pseudo_labels": r.get("pseudo_labels"), "unlabelled": r["unlabelled"]}
                             for r in res["rounds"]],
        "weights_used": res["rounds"][0]["weights_used"], "timings_s": res["timings"]}
        for s, res in zip(seeds, runs)]

    def stat(get):
        v = np.array([get(p) for p in per_seed], dtype=float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}

    summary = {}
    for ds_name in per_seed[0]["table_ii_round0"]:
        for m in ("accuracy", "f1", "top50_accuracy"):
            summary[f"round0/{ds_name}/{m}"] = stat(lambda p: p["table_ii_round0"][ds_name][m])
            summary[f"last/{ds_name}/{m}"] = stat(lambda p: p["table_ii_last_round"][ds_name][m])
    summary["cluster_purity_round0"] = stat(lambda p: p["recursion_fo_des"][0]["unlabelled"]["cluster_purity"])
    metrics = {"seeds": seeds, "summary": summary, "per_seed": per_seed, "config": runs[0]["config"],
               "cpu": mon.as_dict()}
    md = ["| set | accuracy (round 0) | top-50 % accuracy (round 0) | accuracy (after recursion) | "
          "top-50 % (after recursion) |", "|---|---|---|---|---|"]
    for ds_name in per_seed[0]["table_ii_round0"]:
        f = lambda k: f"{100 * summary[k]['mean']:.2f} ± {100 * summary[k]['std']:.2f} %"  # noqa: E731
        md.append(f"| {ds_name} | {f(f'round0/{ds_name}/accuracy')} | {f(f'round0/{ds_name}/top50_accuracy')} | "
                  f"{f(f'last/{ds_name}/accuracy')} | {f(f'last/{ds_name}/top50_accuracy')} |")
    text = (f"### Khan et al. 2019 on the simulator: {len(seeds)} seed(s) {seeds}, mean ± std\n\n"
            + "\n".join(md) + "\n\n" + f"t-SNE + k-means purity of unlabelled DES (round 0): "
            f"{summary['cluster_purity_round0']['mean']:.3f} ± {summary['cluster_purity_round0']['std']:.3f}.  \n"
            f"Sizes (seed {seeds[0]}): {json.dumps(per_seed[0]['sizes'])}.  \n"
            f"Wall time {mon.wall_s / 60:.1f} min for all seeds; CPU taken by other programs: "
            f"{100 * mon.as_dict()['other_processes_cpu_frac']:.0f} %.\n\n"
            f"#### Seed {seeds[0]} in detail\n\n" + (a.work_dir / f"seed{seeds[0]}" / "table_ii.md").read_text())
    write_results(name, metrics, text)
    print(text)

if __name__ == "__main__":
    main()
