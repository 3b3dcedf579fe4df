"""Benchmark: ``labelsky reproduce khan2019`` on leak-free pretraining, with the labelled-pretraining ablation.

For every seed, the same simulated SDSS/DES galaxies are run from each pretraining (``--pretrain``): random
weights (``none``); the self-supervised backbone (the channel-order pretext on simulated LSST galaxies: no class
label, no DES image; the reproduction's default), on the ``khan`` stretch (``selfsup``) and on
histogram-equalised bands that leave no colour to read (``selfsup_equalize``); and, as an ablation, a backbone
trained with labels on simulated DECaLS cutouts of all classes (ellipticals and spirals of the DES camera
included). Each backbone is made once and shared by the seeds, as one ImageNet model is.
Writes benchmarks/results/khan2019.json and khan2019.md: Table II (accuracy and
top-50 % accuracy per set), the recursion gain on FO DES, and the precision of both pseudo-label selections.
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

PRETRAININGS = {"selfsup": "self-supervised (channel order, LSST galaxies)",
                "selfsup_equalize": "self-supervised, channel order of histogram-equalised bands (no colour to read)",
                "labelled": "ablation: supervised on labelled DECaLS classes",
                "none": "random initialisation"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/khan2019"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one full run per seed; mean and std")
    ap.add_argument("--pretrain", nargs="+", default=["none", "selfsup", "selfsup_equalize", "labelled"],
                    choices=list(PRETRAININGS))
    ap.add_argument("--name", default=None, help="results name (default: khan2019[_quick])")
    ap.add_argument("--backbone", default=None, help="timm backbone (default KhanConfig's; the paper: xception41)")
    ap.add_argument("--image-size", type=int, default=None, help="resize the stamps (the paper: 224)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.reproduce.khan2019 import KhanConfig, run_khan2019

    runs = {p: [] for p in a.pretrain}
    mon = CpuMonitor().__enter__()
    # every seed of the first pretraining, then of the next: results are rewritten after every run
    for p in a.pretrain:
        for seed in a.seeds:
            common = dict(workers=a.workers, seed=seed, pretrain=p.split("_")[0],
                          allow_labelled_pretraining=p == "labelled", pretrain_dir=str(a.work_dir / f"pretrain-{p}"),
                          **({"pretext_stretch": "equalize"} if p == "selfsup_equalize" else {}),
                          **({"backbone": a.backbone} if a.backbone else {}),
                          **({"image_size": a.image_size} if a.image_size else {}))
            kc = KhanConfig.quick(**common) if a.quick else KhanConfig(n_objects=a.n, epochs=a.epochs, **common)
            out = a.work_dir / f"seed{seed}-{p}"
            first = a.work_dir / f"seed{seed}-{a.pretrain[0]}"
            if out != first and (first / "sim").exists() and not (out / "sim").exists():  # the same galaxies
                out.mkdir(parents=True, exist_ok=True)
                (out / "sim").symlink_to(first.resolve() / "sim", target_is_directory=True)
            runs[p].append((seed, run_khan2019(out, kc, progress=False)))
            mon.__exit__(None, None, None)
            report(a, runs, mon)


def _summary(values):
    import numpy as np

    v = np.array(values, dtype=float)
    return {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0,
            "values": v.tolist()}


def report(a, runs, mon):
    name = a.name or ("khan2019_quick" if a.quick else "khan2019")
    keys = ("n", "accuracy", "f1", "top50_accuracy", "per_class_accuracy", "n_per_class")
    metrics = {"cpu": mon.as_dict(), "pretraining": {}}
    md = []
    for p, done in runs.items():
        if not done:
            continue
        per_seed = []
        for seed, res in done:
            r0, rl = res["rounds"][0], res["rounds"][-1]
            per_seed.append({
                "seed": seed, "sizes": res["sizes"], "pretraining": res["pretraining"],
                "table_ii_round0": {k: {m: v[m] for m in keys} for k, v in r0["table"].items()},
                "table_ii_last_round": {k: {m: v[m] for m in keys} for k, v in rl["table"].items()},
                "recursion_fo_des": [{"round": r["round"], "accuracy": r["table"]["FO DES"]["accuracy"],
                                      "top50_accuracy": r["table"]["FO DES"]["top50_accuracy"]}
                                     for r in res["rounds"]],
                "pseudo_labels": {k: r0.get(f"pseudo_labels_{k}") for k in ("top_confident", "cluster_filtered")},
                "cluster_purity": r0["unlabelled"]["cluster_purity"], "timings_s": res["timings"]})
        sets = list(per_seed[0]["table_ii_round0"])
        summary = {}
        for s in sets:
            for m in ("accuracy", "f1", "top50_accuracy"):
                summary[f"round0/{s}/{m}"] = _summary([q["table_ii_round0"][s][m] for q in per_seed])
                summary[f"last/{s}/{m}"] = _summary([q["table_ii_last_round"][s][m] for q in per_seed])
            for c in ("elliptical", "spiral"):
                summary[f"round0/{s}/{c}_accuracy"] = _summary([q["table_ii_round0"][s]["per_class_accuracy"][c]
                                                                for q in per_seed])
                summary[f"n/{s}/{c}"] = _summary([q["table_ii_round0"][s]["n_per_class"][c] for q in per_seed])
            summary[f"n/{s}"] = _summary([q["table_ii_round0"][s]["n"] for q in per_seed])
        summary["recursion_gain_fo_des"] = _summary([q["recursion_fo_des"][-1]["accuracy"]
                                                     - q["recursion_fo_des"][0]["accuracy"] for q in per_seed])
        summary["recursion_gain_fo_des_top50"] = _summary([q["recursion_fo_des"][-1]["top50_accuracy"]
                                                           - q["recursion_fo_des"][0]["top50_accuracy"]
                                                           for q in per_seed])
        for k in ("top_confident", "cluster_filtered"):
            if per_seed[0]["pseudo_labels"][k]:
                summary[f"pseudo_labels/{k}/accuracy"] = _summary([q["pseudo_labels"][k]["accuracy"]
                                                                   for q in per_seed])
                summary[f"pseudo_labels/{k}/n"] = _summary([q["pseudo_labels"][k]["n"] for q in per_seed])
        summary["cluster_purity"] = _summary([q["cluster_purity"] for q in per_seed])
        metrics["pretraining"][p] = {"seeds": [q["seed"] for q in per_seed], "summary": summary,
                                     "per_seed": per_seed, "config": done[0][1]["config"]}

        def f(k, summary=summary):
            return f"{100 * summary[k]['mean']:.2f} ± {100 * summary[k]['std']:.2f} %"

        md += [f"### Pretraining: {p} ({PRETRAININGS[p]}); {len(per_seed)} seed(s) "
               f"{[q['seed'] for q in per_seed]}, mean ± std", "",
               "| set | n (mean; elliptical / spiral) | accuracy (round 0) | elliptical | spiral | top-50 % accuracy "
               "(round 0) | accuracy (after recursion) | top-50 % (after recursion) |",
               "|---|---|---|---|---|---|---|---|"]
        for s in sets:
            md.append(f"| {s} | {summary[f'n/{s}']['mean']:.0f} ({summary[f'n/{s}/elliptical']['mean']:.0f} / "
                      f"{summary[f'n/{s}/spiral']['mean']:.0f}) | {f(f'round0/{s}/accuracy')} | "
                      f"{f(f'round0/{s}/elliptical_accuracy')} | {f(f'round0/{s}/spiral_accuracy')} | "
                      f"{f(f'round0/{s}/top50_accuracy')} | {f(f'last/{s}/accuracy')} | "
                      f"{f(f'last/{s}/top50_accuracy')} |")
        pt = (per_seed[0]["pretraining"] or {}).get("pretext")
        if pt:
            md += ["", f"Pretext (channel order, {per_seed[0]['pretraining'].get('pretext_stretch')} stretch; "
                       f"{pt.get('n_test')} held-out galaxies x 6 orders): CNN accuracy {pt.get('test_accuracy'):.3f}; "
                       f"gradient boosting on per-channel summary statistics {pt.get('stats_accuracy'):.3f} (of the "
                       f"same images), {pt.get('stats_raw_accuracy'):.3f} (of the fluxes); chance "
                       f"{pt.get('chance'):.3f}."]
        pl = "; ".join(f"{k.replace('_', ' ')}: {summary[f'pseudo_labels/{k}/n']['mean']:.0f} galaxies, "
                       f"{f(f'pseudo_labels/{k}/accuracy')} correct"
                       for k in ("top_confident", "cluster_filtered") if f"pseudo_labels/{k}/n" in summary)
        sz = per_seed[0]["sizes"]
        md += ["", f"Recursion gain on FO DES: accuracy {f('recursion_gain_fo_des')}, top-50 % "
                   f"{f('recursion_gain_fo_des_top50')}. Pseudo-labels (round 0 model): {pl} (recursion trains "
                   f"with the {done[0][1]['config']['cluster_filter'] and 'cluster-filtered' or 'top-confident'} "
                   f"set). t-SNE + k-means purity of unlabelled DES: {summary['cluster_purity']['mean']:.3f} ± "
                   f"{summary['cluster_purity']['std']:.3f}.  ",
               f"Seed {per_seed[0]['seed']} sizes: training {sz['train_per_class']} (elliptical, spiral; "
               f"thresholds {json.dumps(sz['train_thresholds'])}), HP test {sz['hp_test_per_class']}, HP* test "
               f"{sz['hp_star_test_per_class']}, FO test {sz['fo_test_per_class']}, unlabelled DES "
               f"{sz['unlabelled_des']}.", ""]
    md.append(f"Wall time {mon.wall_s / 60:.1f} min; CPU taken by other programs: "
              f"{100 * mon.as_dict()['other_processes_cpu_frac']:.0f} %.")
    text = "\n".join(md) + "\n"
    write_results(name, metrics, text)
    print(text)


if __name__ == "__main__":
    main()
