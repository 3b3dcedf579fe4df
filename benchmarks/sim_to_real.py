"""Benchmark: simulated labels toward real, unlabelled sky images — the domain gap, per input choice.

Source: labelsky's simulated DECaLS galaxies (elliptical vs spiral, cutouts scaled to each galaxy), labelled.
Target: the real Hubble Deep Field colour picture that scikit-image ships (WFPC2 F450W/F606W/F814W), its
sources detected and cut out by ``labelsky import detect --example hubble-deep-field``: real galaxies, no
labels. For each input choice (flux asinh stretch — the pictures fed as 0-1 —, rendered as the Legacy Survey
viewer does, rendered + JPEG at the viewer's quality, rendered + training-time nuisance randomisation, and the
same on a simulation with per-object randomised nuisances) the script trains a source-only model and a
DeepAstroUDA model with the same budget (``labelsky adapt`` with ``--method source_only`` /
``deepastrouda``), and records the domain-gap AUROC (a logistic regression telling target from source
embeddings, out-of-fold; 0.5 = indistinguishable) of the starting network and of each trained one, the source
test accuracy, and what each model says about the real galaxies (share called elliptical, share flagged
unknown). No label of the real galaxies exists or is read. Writes benchmarks/results/sim_to_real.json / .md and
copies the nearest-neighbour mosaics and gap figures to docs/images/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = {  # name: (simulation, input settings)
    "asinh": ("base", {"stretch": "asinh", "mixed_units": True}),
    "legacysurvey": ("base", {"render": "legacysurvey"}),
    "legacysurvey+jpeg": ("base", {"render": "legacysurvey", "jpeg_quality": 90}),
    "legacysurvey+randomise": ("base", {"render": "legacysurvey", "randomise": {}}),
    "legacysurvey+randomise+sim": ("randomised", {"render": "legacysurvey", "randomise": {}}),
    "legacysurvey+randomise+display": ("base", {"render": "legacysurvey", "randomise": {
        "black": [0.0, 0.12], "contrast": [0.8, 1.6], "gamma": 0.3}}),
}


FIGURES = ("asinh", "legacysurvey+randomise+sim")  # options whose figures go to docs/images


def simulation(work: Path, name: str, n: int, stamp: int, workers: int):
    """The simulation ``base`` or ``randomised`` (per-object nuisance levels), made once and reused."""
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate import simulate_galaxies

    path = work / f"sim_{name}"
    if not (path / "decals" / "labelsky.json").is_file():
        simulate_galaxies(path, n_objects=n, surveys=["decals"], stamp_size=stamp, cutout="scaled",
                          classes={"elliptical": 1, "spiral": 1}, workers=workers, progress=False,
                          randomise=True if name == "randomised" else None)
    return open_dataset(path / "decals")


def real_target(work: Path, stamp: int):
    """The sources of the Hubble Deep Field picture, detected and cut out (made once and reused)."""
    from labelsky.data.importers.detect import example_image, import_detections
    from labelsky.data.io import open_dataset

    hdf = work / "hdf"
    if not (hdf / "labelsky.json").is_file():
        import_detections(example_image("hubble-deep-field"), hdf, size=stamp, cutout="scaled", progress=False)
    return open_dataset(hdf)


def settings_of(a) -> dict:
    return {"backbone": a.backbone, "epochs": a.epochs, "batch_size": a.batch_size, "stamp_size": a.stamp_size,
            "n": a.n, "seed": a.seed, "weights": "random init"}


def run_option(work: Path, name: str, data: dict, a) -> dict:
    """Both methods for one input choice; the result is kept in ``work/results/`` and reused by a later call with
    the same settings (the benchmark resumes option by option)."""
    import json

    from labelsky.utils import atomic_write_json

    done = work / "results" / f"{name}-s{a.seed}.json"
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get("benchmark_settings") == settings_of(a):
            return old
    from labelsky import train
    from labelsky.measures.metrics import entropy
    from labelsky.methods.predict import predict
    from labelsky.methods.uda import UDAConfig

    sim_name, settings = OPTIONS[name]
    if sim_name not in data["sims"]:
        data["sims"][sim_name] = simulation(work, sim_name, a.n, a.stamp_size, a.workers)
    source, target = data["sims"][sim_name], data["hdf"]
    out = {"simulation": sim_name, "settings": settings}
    for method in ("source_only", "deepastrouda"):
        run = work / "runs" / f"{name}-{method}-s{a.seed}"
        cfg = UDAConfig(method=method, backbone=a.backbone, max_epochs=a.epochs, batch_size=a.batch_size,
                        image_size=a.stamp_size, seed=a.seed, device=a.device, num_workers=a.loader_workers,
                        classes_known=["elliptical", "spiral"], **settings)
        t0 = time.perf_counter()
        reused = (run / "eval.json").is_file()  # trained before: loaded, then evaluated by the current code
        model, rep = train("uda", run, {"source": source, "target": target}, cfg, progress=False)
        probs = predict(model, target, domain="target", embed=False)["output"]
        unknown = entropy(probs) > float(model.rho)
        out[method] = {"gap_before": rep["domain_gap"]["before"]["auroc"],
                       "gap_after": rep["domain_gap"]["after"]["auroc"],
                       "gap_after_folds": rep["domain_gap"]["after"]["auroc_folds"],
                       "n_per_domain": rep["domain_gap"]["after"]["n_target"],
                       "source_test_accuracy": rep["source_test"]["accuracy"],
                       "source_test_closed_set_accuracy": rep["source_test"]["closed_set_accuracy"],
                       "real_called_elliptical": float((probs.argmax(1) == 0).mean()),
                       "real_flagged_unknown": float(unknown.mean()),
                       "seconds": round(time.perf_counter() - t0, 1), "model_reused": reused}
        print(name, method, out[method], flush=True)
    out["benchmark_settings"] = settings_of(a)
    atomic_write_json(done, out)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    ap.add_argument("--n", type=int, default=1200, help="simulated galaxies per simulation")
    ap.add_argument("--stamp-size", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1, help="simulation processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 when another job shares the cores)")
    ap.add_argument("--loader-workers", type=int, default=0, help="data-loader processes (rendering runs there)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/sim_to_real"))
    ap.add_argument("--name", default="sim_to_real")
    ap.add_argument("--no-figures", action="store_true", help="do not copy figures into docs/images")
    ap.add_argument("--calibrate", action="store_true", help="also measure the gap between the two simulations "
                    "in each source-only model (needs both simulations and the run folders here)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    mon = CpuMonitor().__enter__()
    data = {"sims": {}, "hdf": real_target(a.work_dir, a.stamp_size)}
    results = {}
    for name in [o for o in OPTIONS if o not in a.options]:  # earlier calls' options, kept with the same settings
        done = a.work_dir / "results" / f"{name}-s{a.seed}.json"
        if done.is_file() and json.loads(done.read_text()).get("benchmark_settings") == settings_of(a):
            results[name] = json.loads(done.read_text())
    for name in a.options:
        results[name] = run_option(a.work_dir, name, data, a)
        mon.__exit__(None, None, None)
        report(a, data, results, mon)
        if not a.no_figures and name in FIGURES:
            for method in ("source_only", "deepastrouda"):
                run = a.work_dir / "runs" / f"{name}-{method}-s{a.seed}"
                for fig in ("nearest_neighbours", "domain_gap"):
                    src = run / "figures" / f"{fig}.png"
                    if src.is_file():
                        shutil.copyfile(src, ROOT / "docs" / "images" / f"sim_to_real_{name}_{method}_{fig}.png")


def calibration(a, data) -> dict:
    """For scale: the gap between the two simulations (test splits) in each source-only model's embedding.

    Two simulations of the same classes that differ only in their nuisances are what "close" looks like; run
    folders must be on this machine (options measured elsewhere are left out).
    """
    from labelsky.evaluate.gap import run_domain_gap

    out = {}
    for name, (sim_name, _) in OPTIONS.items():
        run = a.work_dir / "runs" / f"{name}-source_only-s{a.seed}"
        if not (run / "checkpoints").is_dir():
            continue
        for other in ("base", "randomised"):
            if other not in data["sims"]:
                data["sims"][other] = simulation(a.work_dir, other, a.n, a.stamp_size, a.workers)
        other = "randomised" if sim_name == "base" else "base"
        gap = run_domain_gap(run, data["sims"][other], data["sims"][sim_name], split="test",
                             reference_split="test", device=a.device, seed=a.seed, figures=False)
        out[name] = {"reference": sim_name, "other": other, "auroc": gap["auroc"], "n_per_domain": gap["n_target"]}
    return out


def report(a, data, results, mon):
    hdf = data["hdf"]
    results = {k: results[k] for k in OPTIONS if k in results}
    metrics = {"cpu": mon.as_dict(), "n_real": len(hdf), "device": a.device, "settings": settings_of(a),
               "options": results, "calibration": calibration(a, data) if a.calibrate else {}}
    rows = []
    for name, r in results.items():
        so, da = r["source_only"], r["deepastrouda"]
        rows.append([name, f"{so['gap_before']:.3f}", f"{so['gap_after']:.3f}", f"{da['gap_after']:.3f}",
                     f"{so['source_test_closed_set_accuracy']:.3f} / {da['source_test_closed_set_accuracy']:.3f}",
                     f"{so['real_called_elliptical']:.2f} / {da['real_called_elliptical']:.2f}",
                     f"{so['real_flagged_unknown']:.2f} / {da['real_flagged_unknown']:.2f}"])
    md = (f"Simulated DECaLS (elliptical, spiral; {a.n} galaxies per simulation, scaled "
          f"cutouts, {a.stamp_size} px) -> {len(hdf)} real sources detected in the Hubble Deep Field (no labels). "
          f"{a.backbone} from random initialisation, {a.epochs} epochs, batch {a.batch_size}, seed {a.seed}; "
          f"source-only and DeepAstroUDA with the same budget. Domain gap: out-of-fold AUROC of a logistic "
          f"regression telling real from simulated embeddings (0.5 = indistinguishable), "
          f"{next(iter(results.values()))['source_only']['n_per_domain']} galaxies per domain (held-out simulated "
          f"rows, val and test).")
    flags = [r[m].get("model_reused", False) for r in results.values() for m in ("source_only", "deepastrouda")]
    if any(flags):
        md += (f" {sum(flags)} of {len(flags)} models were trained by an earlier run of this command in --work-dir "
               f"and loaded; every number is measured by this run's code.")
    md += "\n\n"
    md += md_table(["input", "gap: start network", "gap: source-only", "gap: DeepAstroUDA",
                    "sim. test acc., closed set (SO / DA)", "real called elliptical (SO / DA)",
                    "real flagged unknown (SO / DA)"], rows)
    if metrics["calibration"]:
        md += ("\n\nFor scale, the gap between the two simulations (test splits: the base simulation and the one with "
               "per-galaxy randomised nuisances) in each source-only model's embedding: "
               + ", ".join(f"{k} {v['auroc']:.3f}" for k, v in metrics["calibration"].items()) + ".\n")
    write_results(a.name, metrics, md)


if __name__ == "__main__":
    main()
