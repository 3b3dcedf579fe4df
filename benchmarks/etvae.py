"""Benchmark: ``labelsky reproduce etvae`` (the ET-VAE paper's Table 1) at a size that runs on 2 CPU cores in ~1 h.

RMSE of predicted Galaxy Zoo vote fractions (smooth / featured / artifact) on simulated test galaxies with 100,
300, 800 and 1200 labelled galaxies, for fully supervised, semi-supervised (alternating steps) and two-step
training, each with and without the Equivariant Transformer layers (the ablation), over several seeds. Every
regime has the same budget of classifier updates (one pass over the unlabelled pool per epoch), an Adam per loss,
and selects its model on 20 % of its own label budget.
The paper's claim to test: semi-supervised RMSE below fully supervised at small label counts, the gain
shrinking as labels grow. Writes benchmarks/results/etvae.json and etvae.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ALLOW_MODIFIED, CpuMonitor, stamp_runs, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2400)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-fraction", type=float, default=0.2, help="share of each label budget that selects")
    ap.add_argument("--optimisers", choices=["separate", "shared"], default="separate")
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--label-counts", type=int, nargs="+", default=[100, 300, 800, 1200])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/etvae15"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--name", default=None, help="result name (default etvae[_quick])")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.reproduce.etvae import ETVAEReproConfig, run_etvae

    rc = (ETVAEReproConfig.quick(workers=a.workers) if a.quick else
          ETVAEReproConfig(n_objects=a.n, epochs=a.epochs, pretrain_epochs=a.pretrain_epochs, seeds=a.seeds,
                           label_counts=a.label_counts, workers=a.workers, val_fraction=a.val_fraction,
                           optimisers=a.optimisers, patience=a.patience))
    with CpuMonitor() as mon:
        res = run_etvae(a.work_dir, rc, progress=False)
    why = stamp_runs(res["runs"], a.work_dir)
    if why and os.environ.get(ALLOW_MODIFIED) != "1":
        raise SystemExit(f"etvae: not writing results: {why} (or set {ALLOW_MODIFIED}=1)")
    commands = sorted({(r["trained_by"] or {}).get("command", "unrecorded") for r in res["runs"]})
    labels = rc.label_counts
    lines = [f"### ET-VAE on the simulator: RMSE of vote fractions on {res['n_test']} test galaxies "
             f"({rc.survey}, {rc.stamp_size} px, pool {res['n_pool']}, {len(rc.seeds)} seeds, mean ± std)\n",
             f"Budget, every regime: up to {res['budget']['max_classifier_updates']} classifier updates "
             f"({rc.epochs} epochs x {res['budget']['steps_per_epoch']} batches of {rc.batch_size}; semi adds as many "
             f"ELBO updates, two_step {rc.pretrain_epochs} VAE epochs first), early stopping (patience "
             f"{rc.patience} epochs) and model selection on {res['budget']['selection']}; "
             f"{rc.optimisers} optimisers.\n",
             "| regime | " + " | ".join(f"{n} labels" for n in labels) + " |", "|---|" + "---|" * len(labels)]
    for key, cells in res["summary"].items():
        lines.append(f"| {key} | " + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" for c in cells.values()) + " |")
    lines.append("\nDifferences of means (negative = first better):\n")
    lines.append("| comparison | " + " | ".join(f"{n}" for n in labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    for key, d in res["claims"].items():
        lines.append(f"| {key} | " + " | ".join(f"{d[str(n)]:+.4f}" for n in labels) + " |")
    lines.append("\nClassifier updates the selected model had (mean over seeds):\n")
    lines.append("| regime | " + " | ".join(f"{n}" for n in labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    for key, cells in res["budget"]["selected_model_vote_updates"].items():
        lines.append(f"| {key} | " + " | ".join("–" if c["mean"] is None else f"{c['mean']:.0f}"
                                              for c in cells.values()) + " |")
    lines.append(f"\nTraining + evaluation time summed over the {len(res['runs'])} runs: "
                 f"{res['run_seconds'] / 60:.0f} min (this invocation: {res['seconds'] / 60:.0f} min; "
                 "finished runs are reused). Commands that trained the runs: "
                 + "; ".join(f"`{c}`" for c in commands) + ".")
    keep = ("summary", "claims", "runs", "config", "budget", "n_pool", "n_test", "seconds", "run_seconds")
    write_results(a.name or ("etvae_quick" if a.quick else "etvae"),
                  {**{k: res[k] for k in keep}, "trained_by_commands": commands, "cpu": mon.as_dict()},
                  "\n".join(lines))


if __name__ == "__main__":
    main()
