"""Benchmark: does learning the whole Galaxy Zoo decision tree help or hurt the first question?

The same ET-VAE (``labelsky semisup``, regime ``supervised`` by default) is trained twice on the same simulated
galaxies, label budget, seeds, classifier updates and Dirichlet-multinomial likelihood: once on the first
question only (smooth / featured / artifact: ``--questions first``), once on every question of the GZ DECaLS
tree (``--questions decals-dr5``, the whole-tree likelihood of Walmsley et al. 2022). Scored on the test
galaxies by the RMSE of the first question's vote fractions, and, for the whole tree, every question's RMSE.
The galaxies are the simulator's default DECaLS cutouts (all eight classes, fixed 32-pixel stamps), whose
depth resolves the features the lower questions ask about; ``--sample etvae`` draws the ET-VAE paper's sample
(the brightest, r < 17, Galaxy-Zoo framing) instead, about ten times slower to simulate. Each run selects its
model on 20 % of its own label budget by its own validation NLL (the first question's, or the whole tree's). Writes
benchmarks/results/vote_tree.json and vote_tree.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ALLOW_MODIFIED, CpuMonitor, md_table, stamp_runs, write_results  # noqa: E402

ARMS = ("first", "decals-dr5")


def _cell(values) -> dict:
    import numpy as np

    a = np.asarray([v for v in values if v is not None], dtype=float)
    return {"mean": float(a.mean()) if len(a) else None, "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "n": int(len(a)), "values": a.tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--survey", default="decals")
    ap.add_argument("--sample", default="none", help="a paper's sample (etvae) or none: the default simulator")
    ap.add_argument("--stamp-size", type=int, default=32)
    ap.add_argument("--label-counts", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--regime", default="supervised", choices=["supervised", "semi", "two_step"])
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/vote_tree"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a few minutes: 300 galaxies, 1 seed, 2 epochs")
    ap.add_argument("--name", default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.label_counts, a.seeds, a.epochs, a.latent_dim, a.width = 300, [60], [0], 2, 8, 8
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.data.simulate.samples import sample_settings
    from labelsky.data.vote_trees import DECALS_DR5
    from labelsky.measures.metrics import question_rmse
    from labelsky.methods.parts import Part
    from labelsky.methods.semisup.module import SemiSupConfig, fit, split_label_budget
    from labelsky.utils import atomic_write_json

    t0 = time.time()
    with CpuMonitor() as mon:
        sim = {"surveys": [a.survey]}
        if a.sample != "none":
            sim.update(sample=a.sample, **sample_settings(a.sample, surveys=[a.survey]))
        ds = simulate_galaxies(a.work_dir / "sim", n_objects=a.n, stamp_size=a.stamp_size, seed=0, workers=1,
                               progress=False, reuse=True, **sim)[a.survey]
        split = ds.column("split").astype(str)
        voted = sum(ds.column(c) for c in ("votes_smooth", "votes_featured", "votes_artifact")) > 0
        pool, test = np.flatnonzero((split == "train") & voted), np.flatnonzero((split == "test") & voted)
        counts = np.stack([ds.column(c) for c in DECALS_DR5.columns()], 1).astype(float)

        def mean_fractions(rows):
            """Each question's mean observed answer fractions over ``rows`` asked it (the mean predictor)."""
            out = []
            for s in DECALS_DR5.slices():
                c = counts[rows][:, s]
                ok = (c >= 0).all(1) & (c.sum(1) > 0)
                out.append((c[ok] / c[ok].sum(1, keepdims=True)).mean(0))
            return np.concatenate(out)

        runs, reference = [], []
        for seed in a.seeds:
            for n in a.label_counts:
                labelled, val = split_label_budget(pool, n, val_fraction=0.2, seed=seed)
                const = np.tile(mean_fractions(labelled), (len(test), 1))
                reference.append({"seed": seed, "n_labels": n,
                                  "rmse_questions": question_rmse(const, counts[test], DECALS_DR5)})
                for arm in ARMS:
                    rel = Path("runs") / f"seed{seed}" / f"n{n}" / arm
                    done = a.work_dir / rel / "result.json"
                    trained_now = not done.exists()
                    if trained_now:
                        t1 = time.time()
                        cfg = SemiSupConfig(regime=a.regime, questions=arm, likelihood="dirichlet_multinomial",
                                            latent_dim=a.latent_dim, width=a.width, max_epochs=a.epochs,
                                            pretrain_epochs=a.epochs, seed=seed, patience=None)
                        parts = {"labelled": [Part(ds, labelled)], "unlabelled": [Part(ds, pool)],
                                 "val": [Part(ds, val)], "test": [Part(ds, test)]}
                        model, rep = fit(a.work_dir / rel, parts, cfg, progress=False, overwrite=True)
                        atomic_write_json(done, {"rmse_first": rep["test_rmse"],
                                                 "rmse_questions": rep.get("test_rmse_questions"),
                                                 "vote_updates": int(model.n_vote_updates),
                                                 "seconds": round(time.time() - t1, 1)})
                    runs.append({"seed": seed, "n_labels": n, "questions": arm, "run_dir": str(rel),
                                 "trained_now": trained_now, **json.loads(done.read_text())})
    why = stamp_runs(runs, a.work_dir)
    if why and os.environ.get(ALLOW_MODIFIED) != "1":
        raise SystemExit(f"vote_tree: not writing results: {why} (or set {ALLOW_MODIFIED}=1)")
    summary = {arm: {str(n): _cell([r["rmse_first"] for r in runs if r["questions"] == arm and r["n_labels"] == n])
                     for n in a.label_counts} for arm in ARMS}
    rmse = {(r["seed"], r["n_labels"], r["questions"]): r["rmse_first"] for r in runs}
    paired = {str(n): _cell([rmse[s, n, ARMS[1]] - rmse[s, n, ARMS[0]] for s in a.seeds]) for n in a.label_counts}
    names = [q.name for q in DECALS_DR5.questions]
    questions, mean_ref = {}, {}
    for n in a.label_counts:
        tree_runs = [r for r in runs if r["questions"] == ARMS[1] and r["n_labels"] == n]
        questions[str(n)] = {q: _cell([r["rmse_questions"][q] for r in tree_runs]) for q in names}
        mean_ref[str(n)] = {q: _cell([r["rmse_questions"][q] for r in reference if r["n_labels"] == n])
                            for q in names}
    metrics = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
               "n_pool": int(len(pool)), "n_test": int(len(test)), "runs": runs, "summary": summary,
               "tree_minus_first": paired, "tree_questions": questions, "mean_predictor_questions": mean_ref,
               "cpu": mon.as_dict(),
               "wall_s": round(time.time() - t0, 1)}

    def fmt(c):
        return f"{c['mean']:.4f} ± {c['std']:.4f}" if c["n"] > 1 else f"{c['mean']:.4f}"

    md = [f"### First-question RMSE: one question vs the whole GZ DECaLS tree ({a.survey}, {a.stamp_size} px, "
          f"{len(test)} test galaxies, {len(a.seeds)} seeds, mean ± std, regime {a.regime})\n",
          md_table(["labelled galaxies", "first question only", "whole tree", "tree − first (paired)",
                    "mean predictor"],
                   [[n, fmt(summary["first"][str(n)]), fmt(summary["decals-dr5"][str(n)]), fmt(paired[str(n)]),
                     fmt(mean_ref[str(n)]["smooth-or-featured"])] for n in a.label_counts]),
          "\n### Whole-tree runs: RMSE of every question's answer fractions (test galaxies asked it), against "
          "predicting the labelled galaxies' mean fractions\n",
          md_table(["question"] + [f"{n} labels: tree / mean predictor" for n in a.label_counts],
                   [[q] + [f"{fmt(questions[str(n)][q])} / {fmt(mean_ref[str(n)][q])}" for n in a.label_counts]
                    for q in names])]
    write_results(a.name or ("vote_tree_quick" if a.quick else "vote_tree"), metrics, "\n".join(md))


if __name__ == "__main__":
    main()
