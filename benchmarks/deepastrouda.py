"""Benchmark: ``labelsky reproduce deepastrouda`` with its ablations, at a size that runs on 2 CPU cores.

Every variant (source-only, DANCE with and without domain-specific batch norm, DeepAstroUDA and
DeepAstroUDA without L_ES, without L_AC, without DSBN) on identical simulated data, seeds, augmentation
and optimiser budget, for LSST Y1 -> Y10 (known: elliptical, spiral; unknown: mergers) and SDSS -> DECaLS
(nine Galaxy10 classes; unknown: lenses). Writes benchmarks/results/<--name>.json (default deepastrouda) and
.md: per-sample and class-averaged accuracy, unknown recall, AUROC, and each loss term's
share of the gradient norm. The paper's claims to test: DA raises target accuracy far above regular
training (paper: 0.33-0.36 -> 0.73-0.74), detects the unknown class, and DeepAstroUDA >= DANCE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--experiments", nargs="+", default=["lsst-y1-y10", "sdss-decals"])
    ap.add_argument("--n", type=int, nargs="+", default=[900, 900], help="galaxies per experiment")
    ap.add_argument("--epochs", type=int, nargs="+", default=[8, 6], help="epochs per experiment")
    ap.add_argument("--stamp-size", type=int, default=32)
    ap.add_argument("--backbone", default="resnet10t")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--stretch", choices=["fixed", "survey"], default="fixed")
    ap.add_argument("--methods", nargs="+", default=None, help="variants (default: all)")
    ap.add_argument("--name", default=None, help="results name (default: deepastrouda[_quick])")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/deepastrouda"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.reproduce.deepastrouda import VARIANTS, ReproConfig, run_deepastrouda

    mon = CpuMonitor().__enter__()
    results = {}
    for i, exp in enumerate(a.experiments):  # the results file is rewritten after every experiment
        n, epochs = a.n[min(i, len(a.n) - 1)], a.epochs[min(i, len(a.epochs) - 1)]
        rc = (ReproConfig.quick(experiment=exp, workers=a.workers, methods=a.methods or list(VARIANTS)) if a.quick else
              ReproConfig(experiment=exp, n_objects=n, epochs=epochs, backbone=a.backbone, seeds=a.seeds,
                          workers=a.workers, stretch=a.stretch, methods=a.methods or list(VARIANTS),
                          stamp_size=a.stamp_size))
        results[exp] = run_deepastrouda(a.work_dir / f"{exp}-{rc.stretch}", rc, progress=False)
        mon.__exit__(None, None, None)
        report(a, results, mon)


def report(a, results, mon):
    name = a.name or ("deepastrouda_quick" if a.quick else "deepastrouda")
    metrics, md = {"cpu": mon.as_dict()}, []
    for exp, res in results.items():
        metrics[exp] = {"config": res["config"], "n_source": res["n_source"], "n_target": res["n_target"],
                        "claims": res["claims"], "seconds": res["seconds"],
                        "summary": {m: v["summary"] for m, v in res["methods"].items()},
                        "runs": {m: [{k: r[k] for k in ("seed", "source_test", "target_test", "rho", "margin",
                                                         "epochs_trained", "seconds", "grad_share")}
                                     for r in v["runs"]] for m, v in res["methods"].items()},
                        "pairs": {m: v["summary"].get("pairs", {}) for m, v in res["methods"].items()},
                        "tuner_moves": {m: [len(r.get("tuner_history") or []) for r in v["runs"]]
                                        for m, v in res["methods"].items()}}
        md.append(f"### {exp}: {res['source']} -> {res['target']}, known {', '.join(res['known'])}, unknown in "
                  f"target: {', '.join(sorted(set(res['target_classes']) - set(res['known'])))}; "
                  f"{len(res['config']['seeds'])} seeds, mean ± std; asinh stretch: {res['config']['stretch']}, "
                  f"{res['config']['backbone']}, {res['n_source']} + {res['n_target']} galaxies, "
                  f"{res['config']['stamp_size']} px, up to {res['config']['epochs']} epochs\n")
        md.append("| variant | source acc | target acc | target class-avg acc | target known-class acc | "
                  "target unknown recall | target H-score | target AUROC | target closed-set acc | "
                  "gradient share CE / DA / AC source pairs / ES | tuner moves per run |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for m, v in res["methods"].items():
            s, t = v["summary"]["source_test"], v["summary"]["target_test"]

            def f(d):
                return "–" if d["mean"] is None else f"{d['mean']:.3f} ± {d['std']:.3f}"
            g = v["summary"].get("grad_share", {})
            da = g.get("ac") or g.get("nc")
            shares = " / ".join("–" if d is None or d["mean"] is None else f"{d['mean']:.3f}"
                                for d in (g.get("ce"), da, g.get("acs"), g.get("es")))
            moves = ", ".join(str(len(r.get("tuner_history") or [])) for r in v["runs"])
            md.append(f"| {m} | {f(s['accuracy'])} | {f(t['accuracy'])} | {f(t['class_mean_accuracy'])} | "
                      f"{f(t['known_mean_accuracy'])} | {f(t['unknown_accuracy'])} | {f(t['h_score'])} | "
                      f"{f(t['auroc'])} | {f(t.get('closed_set_accuracy', {'mean': None}))} | {shares} | {moves} |")
        md.append("")
        md += pair_table(res)
        md.append("Closed-set acc: argmax accuracy on the target's known-class galaxies, ignoring the unknown "
                  "threshold (whether the classes are ranked right where the model is too uncertain to commit).\n")
        md.append("Claims (means): " + ", ".join(f"{k} = {v:.3f}" for k, v in res["claims"].items()
                                                 if v is not None) + f"; {res['seconds'] / 60:.0f} min.\n")
    write_results(name, metrics, "\n".join(md))


RULES = ("ordered", "unordered", "features", "confident")


def pair_table(res) -> list:
    """Precision / recall of each pair rule's similarity labels at the last epoch, measured on the states of every
    DeepAstroUDA run (all rules counted on the same pairs), against the simulated classes."""
    md = []
    for m, v in res["methods"].items():
        pairs = v["summary"].get("pairs") or {}
        if not pairs or not m.startswith("deepastrouda"):
            continue

        def g(key, pairs=pairs):
            d = pairs.get(key)
            return "–" if not d or d["mean"] is None else f"{d['mean']:.3f}"
        md.append(f"Pair labels on the states of `{m}` (last epoch, mean over seeds; tt: target galaxy and target "
                  "row, ts: target galaxy and source row; precision / recall of 'similar' against the true class, "
                  "coverage = share of pairs counted, similar = share of counted pairs labelled similar):\n")
        md.append("| rule | tt known P / R | ts known P / R | known coverage tt / ts | unknown galaxies: tt P / R "
                  "| unknown: similar rate tt / ts | unknown coverage tt / ts |")
        md.append("|---|---|---|---|---|---|---|")
        for rule in RULES:
            k = f"pairs_{rule}"
            md.append(f"| {rule} | {g(k + '_tt_known_precision')} / {g(k + '_tt_known_recall')} | "
                      f"{g(k + '_ts_known_precision')} / {g(k + '_ts_known_recall')} | "
                      f"{g(k + '_tt_known_coverage')} / {g(k + '_ts_known_coverage')} | "
                      f"{g(k + '_tt_unknown_precision')} / {g(k + '_tt_unknown_recall')} | "
                      f"{g(k + '_tt_unknown_similar_rate')} / {g(k + '_ts_unknown_similar_rate')} | "
                      f"{g(k + '_tt_unknown_coverage')} / {g(k + '_ts_unknown_coverage')} |")
        md.append("")
    return md


if __name__ == "__main__":
    main()
