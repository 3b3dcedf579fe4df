"""Benchmark: a labelled stand-in for the sim -> real goal — viewer JPEG pictures of another simulation.

No labelled real galaxy set can be obtained here, so this measures the mechanics of the goal on pictures whose
labels are known: the source is the base simulation of ``sim_to_real.py`` (DECaLS ellipticals and spirals, flux,
scaled 48 px cutouts); the target is a *different* simulation (other seed, per-galaxy randomised PSF, depth, sky,
neighbours, gains) that also holds mergers, written out as JPEG files the way the Legacy Survey viewer serves
them (its renderer, quality 90) and brought back with ``labelsky import pictures`` as 8-bit pictures. The target's
labels are read only for the scores. For the flux asinh inputs (the target pictures fed as 0-1) and for rendered
inputs with training-time randomisation, source-only and DeepAstroUDA with one budget: elliptical-vs-spiral AUROC
on the target's ellipticals and spirals (from p(elliptical)), the share of mergers flagged unknown and of the
others, and the domain gap. Writes benchmarks/results/sim_to_pictures.json / .md.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, write_results  # noqa: E402

OPTIONS = {"asinh": {"stretch": "asinh", "mixed_units": True},
           "legacysurvey+randomise": {"render": "legacysurvey", "randomise": {}}}


def target_pictures(work: Path, n: int, stamp: int, workers: int, seed: int):
    """The target: a randomised simulation with mergers, as Legacy Survey viewer JPEGs, imported as pictures."""
    import numpy as np
    from PIL import Image

    from labelsky.data.display import render
    from labelsky.data.importers.base import ImportSettings
    from labelsky.data.importers.pictures import import_pictures
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate import simulate_galaxies

    out = work / "pictures"
    if (out / "labelsky.json").is_file():
        return open_dataset(out)
    sim = work / "target_sim"
    if not (sim / "decals" / "labelsky.json").is_file():
        simulate_galaxies(sim, n_objects=n, surveys=["decals"], stamp_size=stamp, cutout="scaled", seed=seed,
                          classes={"elliptical": 1, "spiral": 1, "merger": 1}, randomise=True, workers=workers,
                          progress=False)
    ds = open_dataset(sim / "decals")
    jpg = work / "jpeg"
    jpg.mkdir(parents=True, exist_ok=True)
    names, ps = ds.column("label_name"), ds.column("pixel_scale")
    rows = []
    for i in range(len(ds)):
        rgb = render(ds.image(i), ds.bands, "legacysurvey", pixel_scale=float(ps[i]))
        Image.fromarray(np.round(np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)).save(jpg / f"{i:05d}.jpg",
                                                                                      quality=90)
        rows.append({"id_str": ds.column("id_str")[i], "ra": ds.column("ra")[i], "dec": ds.column("dec")[i],
                     "file": f"{i:05d}.jpg", "label_name": names[i],
                     "split": "test" if i % 3 == 0 else "unlabelled"})
    with open(jpg / "catalog.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    settings = ImportSettings(survey="decals", bands=["g", "r", "z"], classes=["elliptical", "spiral", "merger"])
    pics, _ = import_pictures(jpg / "catalog.csv", out, settings, progress=False)
    return pics


def run_option(work: Path, name: str, source, target, a, seed: int) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from labelsky import train
    from labelsky.measures.metrics import entropy
    from labelsky.methods.predict import predict
    from labelsky.methods.uda import UDAConfig

    names = target.column("label_name").astype(str)
    test = np.flatnonzero(target.column("split").astype(str) == "test")
    out = {}
    for method in ("source_only", "deepastrouda"):
        cfg = UDAConfig(method=method, backbone=a.backbone, max_epochs=a.epochs, batch_size=a.batch_size,
                        image_size=a.stamp_size, seed=seed, device=a.device, num_workers=a.loader_workers,
                        classes_known=["elliptical", "spiral"], **OPTIONS[name])
        run_dir = work / "runs" / f"{name}-{method}-s{seed}"
        reused = (run_dir / "eval.json").is_file()  # trained before: loaded, then evaluated by the current code
        model, rep = train("uda", run_dir, {"source": source, "target": target}, cfg, progress=False)
        probs = predict(model, target, test, domain="target", embed=False)["output"]
        unknown = entropy(probs) > float(model.rho)
        n = names[test]
        known = np.isin(n, ["elliptical", "spiral"])
        out[method] = {
            "early_late_auroc": float(roc_auc_score(n[known] == "elliptical", probs[known, 0])),
            "early_late_accuracy": float(((probs[known, 0] > 0.5) == (n[known] == "elliptical")).mean()),
            "mergers_flagged_unknown": float(unknown[n == "merger"].mean()),
            "others_flagged_unknown": float(unknown[known].mean()),
            "gap_before": rep["domain_gap"]["before"]["auroc"], "gap_after": rep["domain_gap"]["after"]["auroc"],
            "source_test_closed_set_accuracy": rep["source_test"]["closed_set_accuracy"],
            "n_test": {c: int((n == c).sum()) for c in ("elliptical", "spiral", "merger")},
            "n_gap_per_domain": rep["domain_gap"]["after"]["n_target"], "model_reused": reused}
        print(name, method, seed, out[method], flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    ap.add_argument("--n", type=int, default=1200, help="simulated source galaxies (the sim_to_real base run)")
    ap.add_argument("--n-target", type=int, default=900)
    ap.add_argument("--stamp-size", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--target-seed", type=int, default=7)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--loader-workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--source-dir", type=Path, default=Path("/tmp/labelsky_bench/sim_to_real"),
                    help="work folder of sim_to_real.py (its base simulation is the source)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/sim_to_pictures"))
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sim_to_real import simulation

    mon = CpuMonitor().__enter__()
    source = simulation(a.source_dir, "base", a.n, a.stamp_size, a.workers)
    target = target_pictures(a.work_dir, a.n_target, a.stamp_size, a.workers, a.target_seed)
    results = {}
    keys = ("early_late_auroc", "mergers_flagged_unknown", "others_flagged_unknown", "gap_after")
    for seed in a.seeds:  # finished runs are loaded, not retrained: more seeds can be added later
        for name in a.options:
            results.setdefault(name, {})[str(seed)] = run_option(a.work_dir, name, source, target, a, seed)
        mon.__exit__(None, None, None)
        summary = {name: {m: {k: {"mean": float(np.mean([r[m][k] for r in per.values()])),
                                  "std": float(np.std([r[m][k] for r in per.values()])), "n_seeds": len(per)}
                              for k in keys} for m in ("source_only", "deepastrouda")}
                   for name, per in results.items()}
        rows = [[k, *(f"{summary[k][m][key]['mean']:.3f} ± {summary[k][m][key]['std']:.3f}" for key in keys
                      for m in ("source_only", "deepastrouda"))] for k in summary]
        header = ["input"] + [f"{what} ({m})" for what in ("early/late AUROC", "mergers unknown", "others unknown",
                                                           "gap after") for m in ("SO", "DA")]
        t = next(iter(next(iter(results.values())).values()))["source_only"]["n_test"]
        n_seeds = len(next(iter(results.values())))
        flags = [r[m]["model_reused"] for per in results.values() for r in per.values() for m in r]
        n_reused, n_runs = sum(flags), len(flags)
        gap_n = next(iter(next(iter(results.values())).values()))["source_only"]["n_gap_per_domain"]
        md = (f"Source: {len(source)} simulated DECaLS galaxies (elliptical, spiral; flux). Target: {len(target)} "
              f"galaxies of another, per-galaxy randomised simulation (seed {a.target_seed}) with mergers, written as "
              f"Legacy Survey viewer JPEGs (quality 90) and imported as pictures; scored on its test third "
              f"({t['elliptical']} elliptical, {t['spiral']} spiral, {t['merger']} mergers), labels never used "
              f"in training. {a.backbone} from random initialisation, {a.epochs} epochs; mean ± std over "
              f"{n_seeds} seed(s); SO = source-only, DA = DeepAstroUDA, one budget. Domain gap on {gap_n} "
              f"galaxies per domain (held-out source rows, val and test)."
              + (f" {n_reused} of {n_runs} models were trained by an earlier run of this command in --work-dir and "
                 f"loaded; every number is measured by this run's code." if n_reused else "")
              + "\n\n" + md_table(header, rows))
        write_results("sim_to_pictures", {"cpu": mon.as_dict(), "settings": vars(a) | {
            "work_dir": str(a.work_dir), "source_dir": str(a.source_dir)}, "options": results, "summary": summary},
            md)


if __name__ == "__main__":
    main()
