"""``labelsky <command>``: the command-line interface.

Commands
--------
surveys    list the survey specifications (or print one as YAML)
simulate   simulate galaxy cutouts or galaxy-cluster fields seen by several surveys
show       colour mosaics (one row per class) of a dataset or a simulation folder
import     import real data: FITS cutouts, cutouts from large FITS images, Galaxy10 HDF5, PNG / JPEG pictures
validate   list every problem of a dataset (catalog fields, image shards, bad pixels)
crossmatch match two datasets by sky position (e.g. SDSS and DES) into aligned overlap datasets
train      train a transfer-learning classifier (timm backbone, progressive unfreezing) into a run folder
evaluate   metrics of a trained run on a dataset split (accuracy, F1, confusion, confidence curve)
catalog    run a trained model over a whole dataset into a Parquet / FITS catalog (resumable)
adapt      universal domain adaptation (DeepAstroUDA, DANCE, source-only) with unknown-class detection
semisup    semi-supervised vote fractions with the Equivariant-Transformer VAE (three regimes)
pretrain   self-supervised pretext training on band images (which band / which colour order)
richness   cluster richness from band images, cross-validated, random vs pretext-pretrained extractor
reproduce  reproduce a paper on the simulator (khan2019, deepastrouda, etvae, owg)
demo       the embedded default end to end: simulate, train, evaluate, cluster, catalog
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def _classes_arg(text: str) -> dict:
    """``elliptical=0.5,spiral=0.5`` or ``elliptical,spiral`` (equal shares)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"class proportion {part!r} is not NAME=NUMBER") from None
    if not out:
        raise argparse.ArgumentTypeError("no classes given")
    return out


def _add_simulate(sub):
    p = sub.add_parser("simulate", help="simulate cutouts or cluster fields seen by several surveys",
                       description="Simulate the same sky observed by several surveys; writes one labelsky "
                                   "dataset per survey under OUT.")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--kind", choices=["galaxies", "clusters"], default="galaxies")
    p.add_argument("--surveys", "-s", nargs="+", default=None,
                   help="survey names or YAML files (default: sdss des for galaxies, sdss for clusters)")
    p.add_argument("--n", type=int, default=1000, help="number of galaxies (or clusters)")
    p.add_argument("--classes", type=_classes_arg, default=None,
                   help="class proportions, e.g. 'elliptical=0.5,spiral=0.5' (default: every class)")
    p.add_argument("--stamp-size", type=int, default=None, help="cutout side in pixels (default: survey's)")
    p.add_argument("--cutout", choices=["fixed", "scaled"], default="fixed",
                   help="fixed: native pixels; scaled: field of view ~17 half-light radii (Galaxy Zoo style)")
    p.add_argument("--overlap", type=float, default=1.0, help="fraction of objects seen by every survey")
    p.add_argument("--mag-range", type=float, nargs=2, default=(15.0, 19.0), metavar=("BRIGHT", "FAINT"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="objects per shard (default: n/8 between 16 and 256 galaxies; 64 clusters)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--npix", type=int, default=128, help="clusters: image side in pixels")
    p.add_argument("--views", type=int, default=1, help="clusters: images per cluster")
    p.add_argument("--field-mpc", type=float, default=1.0, help="clusters: image side in physical Mpc")
    for name, what in (("stars", "foreground stars"), ("field-galaxies", "neighbouring field galaxies"),
                       ("sky-residuals", "sky-subtraction residuals"), ("source-noise", "source Poisson noise"),
                       ("saturation", "saturation and bleeding (galaxies only)"), ("noise", "all noise")):
        p.add_argument(f"--no-{name}", dest=name.replace("-", "_"), action="store_false", help=f"switch off {what}")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(a) -> int:
    switches = dict(stars=a.stars, field_galaxies=a.field_galaxies, sky_residuals=a.sky_residuals,
                    source_noise=a.source_noise, noise=a.noise)
    if a.kind == "galaxies":
        from labelsky.data.simulate import simulate_galaxies

        kwargs = dict(n_objects=a.n, surveys=a.surveys or ["sdss", "des"], stamp_size=a.stamp_size,
                      cutout=a.cutout, overlap=a.overlap, mag_range=tuple(a.mag_range), seed=a.seed,
                      shard_size=a.shard_size, saturation=a.saturation, **switches)
        if a.classes:
            kwargs["classes"] = a.classes
        result = simulate_galaxies(a.out, workers=a.workers, overwrite=a.overwrite, **kwargs)
    else:
        from labelsky.data.simulate.clusters import simulate_clusters

        result = simulate_clusters(a.out, workers=a.workers, overwrite=a.overwrite, n_clusters=a.n,
                                   surveys=a.surveys or ["sdss"], views_per_cluster=a.views, npix=a.npix,
                                   field_mpc=a.field_mpc, seed=a.seed, shard_size=a.shard_size or 64, **switches)
    for name, ds in result.items():
        print(f"{name}: {len(ds)} objects, bands {''.join(ds.bands)}, images {ds.image_shape} -> {ds.path}")
    return 0


def _datasets_at(path: Path) -> dict:
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate.stamps import open_simulation

    if (path / "simulation.json").exists():
        return open_simulation(path)
    ds = open_dataset(path)
    return {ds.survey.name: ds}


def _add_show(sub):
    p = sub.add_parser("show", help="colour mosaics of a dataset or simulation, one row per class")
    p.add_argument("path", type=Path, help="a dataset folder or a simulation folder")
    p.add_argument("--out", "-o", type=Path, default=None, help="folder for PNGs (default: PATH/figures)")
    p.add_argument("--per-class", type=int, default=6)
    p.add_argument("--method", choices=["lupton", "desi", "asinh"], default="lupton")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs")
    p.set_defaults(func=cmd_show)


def cmd_show(a) -> int:
    from labelsky.data.display import mosaic

    datasets = _datasets_at(a.path)
    out = a.out or (a.path / "figures")
    for name, ds in datasets.items():
        if ds.classes:
            png = mosaic(ds, out / f"mosaic_{name}.png", per_class=a.per_class, method=a.method, seed=a.seed,
                         dpi=a.dpi)
        else:  # clusters: no classes, show a row of fields
            png = _field_strip(ds, out / f"fields_{name}.png", a.per_class, a.method)
        print(png)
    return 0


def _field_strip(ds, out: Path, n: int, method: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from labelsky.data.display import to_rgb

    n = min(n, len(ds))
    rich = ds.column("richness")
    order = np.argsort(rich)[np.linspace(0, len(ds) - 1, n).astype(int)] if n else []
    fig, axes = plt.subplots(1, max(n, 1), figsize=(2.0 * max(n, 1), 2.3), squeeze=False)
    for ax, i in zip(axes[0], order):
        ps = float(ds.column("pixel_scale")[i]) if "pixel_scale" in ds.catalog.column_names else ds.survey.pixel_scale
        sig = [ds.survey.noise_sigma(b, ps) for b in range(len(ds.bands))]
        ax.imshow(to_rgb(ds.image(int(i)), ds.bands, method, ps, noise=sig), origin="lower")
        ax.set_title(f"lambda={rich[i]:.0f}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _add_crossmatch(sub):
    p = sub.add_parser("crossmatch", help="match two datasets by sky position into two aligned datasets",
                       description="Match dataset A to dataset B by ra / dec; write OUT/<survey of A> and "
                                   "OUT/<survey of B> holding only the matched objects, row k of both being the "
                                   "same object, and OUT/crossmatch.json with the report.")
    p.add_argument("a", metavar="A", type=Path, help="dataset A (its id_str is kept for both outputs)")
    p.add_argument("b", metavar="B", type=Path, help="dataset B")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--radius", type=float, default=1.0, help="largest separation of a match, arcsec (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_crossmatch)


def cmd_crossmatch(a) -> int:
    from labelsky.data.crossmatch import crossmatch_datasets
    from labelsky.data.io import DatasetError, open_dataset

    if not a.radius > 0:
        raise DatasetError(f"--radius {a.radius} must be > 0 arcsec")
    ds_a, ds_b = open_dataset(a.a), open_dataset(a.b)
    r = crossmatch_datasets(ds_a, ds_b, a.out, radius_arcsec=a.radius, overwrite=a.overwrite)
    med = "n/a" if r["sep_median_arcsec"] is None else f"{r['sep_median_arcsec']:.3f} arcsec"
    print(f"matched {r['n_matched']} objects within {r['radius_arcsec']:g} arcsec: "
          f"{r['fraction_1_matched']:.1%} of {r['n1']} in {ds_a.survey.name}, "
          f"{r['fraction_2_matched']:.1%} of {r['n2']} in {ds_b.survey.name}; "
          f"median separation {med}; {r['n_duplicates']} duplicate(s) dropped")
    for side, name in (("a", ds_a.survey.name), ("b", ds_b.survey.name)):
        print(f"{name}: {r['n_matched']} objects -> {r['outputs'][side]}")
    print(f"report: {a.out / 'crossmatch.json'}")
    return 0


def _add_import(sub):
    p = sub.add_parser("import", help="import real survey data (FITS, Galaxy10, pictures) into a labelsky dataset",
                       description="Streaming, resumable import: rerun the same command to resume. Every object "
                                   "left out or flagged is listed in OUT/import_report.json.")
    p.add_argument("kind", choices=["fits-cutouts", "fits-images", "galaxy10", "pictures"],
                   help="fits-cutouts: one FITS file per object (catalog column 'file'); fits-images: cutouts "
                        "from large FITS images with WCS (--image BAND=FILE ...); galaxy10: a Galaxy10 DECaLS "
                        "HDF5 file; pictures: PNG / JPEG colour cutouts (catalog column 'file')")
    p.add_argument("source", type=Path, help="catalog (CSV / FITS / Parquet) or, for galaxy10, the HDF5 file")
    p.add_argument("--out", "-o", required=True, type=Path, help="dataset folder")
    p.add_argument("--survey", default=None, help="survey name or YAML file of the images (default: decals for "
                                                  "galaxy10 / pictures, sdss otherwise)")
    p.add_argument("--bands", nargs="+", default=None, help="band of every image channel, in order")
    p.add_argument("--image", action="append", default=[], metavar="BAND=FILE", help="fits-images: one per band")
    p.add_argument("--size", type=int, default=None, help="output cutout side, pixels")
    p.add_argument("--pixel-scale", type=float, default=None, help="fits-cutouts: input arcsec/pixel when the "
                                                                   "files give none")
    p.add_argument("--flux-scale", type=float, default=None, help="multiply FITS data by this to get nanomaggies "
                                                                  "(default: from a zeropoint keyword, else 1)")
    p.add_argument("--classes", nargs="+", default=None, help="class names in label order (integer labels)")
    p.add_argument("--votes", type=Path, default=None, help="a Galaxy Zoo vote table to join on id_str (GZ2 / GZ "
                                                            "DECaLS / labelsky columns; galaxy10: or by position)")
    p.add_argument("--base-dir", type=Path, default=None, help="folder of relative 'file' paths (default: the "
                                                               "catalog's)")
    p.add_argument("--max-masked", type=float, default=0.2, help="flag cutouts with more bad pixels in a band")
    p.add_argument("--reject-masked", action="store_true", help="leave such cutouts out instead of flagging them")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split (when no 'split' column)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_import)


def cmd_import(a) -> int:
    from labelsky.data.importers.base import ImportSettings
    from labelsky.data.io import DatasetError

    display = a.kind in ("galaxy10", "pictures")
    settings = ImportSettings(survey=a.survey or ("decals" if display else "sdss"), bands=a.bands,
                              classes=a.classes, shard_size=a.shard_size, max_masked=a.max_masked,
                              reject_masked=a.reject_masked, seed=a.seed)
    if a.votes is not None and a.kind == "fits-images":
        raise DatasetError("--votes is for fits-cutouts, galaxy10 and pictures; put vote columns in the catalog")
    if a.kind == "fits-cutouts":
        from labelsky.data.importers.fits import import_fits_cutouts

        ds, rep = import_fits_cutouts(a.source, a.out, settings, base_dir=a.base_dir, size=a.size,
                                      pixel_scale=a.pixel_scale, flux_scale=a.flux_scale, votes=a.votes,
                                      overwrite=a.overwrite)
    elif a.kind == "fits-images":
        from labelsky.data.importers.fits import import_fits_images

        images = {}
        for item in a.image:
            band, sep, path = item.partition("=")
            if not sep or not band or not path:
                raise DatasetError(f"--image {item!r}: expected BAND=FILE")
            images[band] = Path(path)
        if not images:
            raise DatasetError("fits-images needs --image BAND=FILE for every band")
        settings.bands = a.bands or list(images)
        ds, rep = import_fits_images(images, a.source, a.out, settings, size=a.size, flux_scale=a.flux_scale,
                                     overwrite=a.overwrite)
    elif a.kind == "galaxy10":
        from labelsky.data.importers.galaxy10 import import_galaxy10

        ds, rep = import_galaxy10(a.source, a.out, settings, votes=a.votes, size=a.size, overwrite=a.overwrite)
    else:
        from labelsky.data.importers.base import read_table
        from labelsky.data.importers.pictures import import_pictures
        from labelsky.data.importers.votes import join_votes

        source = a.source
        if a.votes is not None:
            source = join_votes(read_table(a.source), a.votes)
        ds, rep = import_pictures(source, a.out, settings, base_dir=a.base_dir or a.source.parent, size=a.size,
                                  overwrite=a.overwrite)
    print(f"{ds.path}: {len(ds)} objects written of {rep['n_input']}; {rep['n_rejected']} left out, "
          f"{rep['n_flagged']} flagged (see {ds.path / 'import_report.json'})")
    for p in rep["problems"][:10]:
        print(f"  {p['action']}: row {p['row']} id_str={p['id_str']!r} {p['file']}: {p['reason']}")
    if len(rep["problems"]) > 10:
        print(f"  ... {len(rep['problems']) - 10} more in the report")
    return 0


def _add_validate(sub):
    p = sub.add_parser("validate", help="list every problem of a dataset (catalog fields, images, bad pixels)")
    p.add_argument("dataset", type=Path)
    p.add_argument("--max-masked", type=float, default=0.2, help="warn above this fraction of bad pixels in a band")
    p.add_argument("--no-pixels", dest="pixels", action="store_false", help="skip reading the images")
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.set_defaults(func=cmd_validate)


def cmd_validate(a) -> int:
    from labelsky.data.validate import validate_dataset

    problems = validate_dataset(a.dataset, max_masked=a.max_masked, check_pixels=a.pixels)
    if a.json:
        print(json.dumps(problems, indent=2))
    else:
        for p in problems:
            where = "".join([f" row {p['row']}" if p["row"] is not None else "",
                             f" (id_str={p['id_str']!r})" if p["id_str"] else ""])
            print(f"{p['level']}: {p['file']}{where}: {p['message']}")
    n_err = sum(p["level"] == "error" for p in problems)
    print(f"{a.dataset}: {n_err} error(s), {len(problems) - n_err} warning(s)", file=sys.stderr)
    return 1 if n_err else 0


def _add_surveys(sub):
    p = sub.add_parser("surveys", help="list the survey specifications")
    p.add_argument("name", nargs="?", help="print this survey as YAML (a template for your own)")
    p.set_defaults(func=cmd_surveys)


def cmd_surveys(a) -> int:
    import yaml

    from labelsky.data.surveys import get_survey, list_surveys

    if a.name:
        print(yaml.safe_dump(get_survey(a.name).to_dict(), sort_keys=False), end="")
        return 0
    print(f"{'name':<14} {'pixel':>6}  {'bands':<7} {'PSF FWHM (arcsec)':<31} {'5-sigma depth (AB)':<31} description")
    for name in list_surveys():
        s = get_survey(name)
        fwhm = " ".join(f"{x:.2f}" for x in s.psf_fwhm)
        depth = " ".join(f"{x:.1f}" for x in s.depth)
        print(f"{name:<14} {s.pixel_scale:>6.3f}  {''.join(s.bands):<7} {fwhm:<31} {depth:<31} {s.description}")
    return 0


def _add_distributed(p) -> None:
    """Lightning's devices / nodes / strategy for a training command."""
    g = p.add_argument_group("several devices or nodes (Lightning)")
    g.add_argument("--devices", default=None, help="devices per node: a count (CPU processes or GPUs), or 'auto' "
                                                   "(default: one)")
    g.add_argument("--num-nodes", type=int, default=1, help="nodes (launch one process per node, e.g. with "
                                                            "torchrun or SLURM's srun)")
    g.add_argument("--strategy", default="auto", help="e.g. ddp (data-parallel: each process sees 1/N of the data, "
                                                      "gradients averaged; gloo on CPU, NCCL on GPU)")


def _rank_zero() -> bool:
    """After a distributed fit, only rank 0 evaluates and writes; the other processes stop here."""
    from labelsky.training import is_global_zero

    return is_global_zero()


def _dist(a) -> dict:
    devices = a.devices
    if devices is not None and devices != "auto":
        try:
            devices = int(devices)
        except ValueError:
            raise SystemExit(f"labelsky: --devices must be a count or 'auto', got {devices!r}") from None
    return {"devices": devices, "num_nodes": a.num_nodes, "strategy": a.strategy}


def _add_train(sub):
    p = sub.add_parser("train", help="train a transfer-learning classifier into a run folder")
    p.add_argument("--data", nargs="+", required=True, type=Path, help="dataset folder(s); rows of split "
                   "'train' with a label >= 0 train, split 'val' validates")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--backbone", default="xception41", help="any timm model name (default: the paper's Xception; "
                   "resnet18 is ~8x faster on a CPU)")
    p.add_argument("--weights", default=None, help="local weight file, or 'timm' to download (needs internet)")
    p.add_argument("--bands", nargs="+", default=None, help="band names to use (default: all)")
    p.add_argument("--stretch", choices=["asinh", "khan", "standardize", "none"], default="asinh",
                   help="asinh (survey noise), khan ([-1, 1] per image), standardize (per band), none")
    p.add_argument("--mask-channel", action="store_true", help="add a bad-pixel channel (imported data)")
    p.add_argument("--image-size", type=int, default=None, help="resize to this side (e.g. 224)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--head-epochs", type=int, default=2, help="epochs of head-only training first")
    p.add_argument("--unfreeze-every", type=int, default=2, help="epochs between unfreezing steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    _add_distributed(p)
    p.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    import numpy as np

    from labelsky.data.io import DatasetError, open_dataset
    from labelsky.methods.classify import train_classifier
    from labelsky.methods.transfer import TransferConfig

    datasets = [open_dataset(p) for p in a.data]
    classes = datasets[0].classes
    for ds in datasets[1:]:
        if ds.classes != classes:
            raise DatasetError(f"{ds.path}: classes {ds.classes} differ from {datasets[0].path}: {classes}")
    parts = {"train": [], "val": []}
    for ds in datasets:
        split, label = ds.column("split"), ds.column("label")
        for name in parts:
            rows = np.flatnonzero((split == name) & (label >= 0))
            if len(rows):
                parts[name].append((ds, rows, None))
    if not parts["train"]:
        raise DatasetError(f"no labelled rows of split 'train' in {[str(p) for p in a.data]}")
    if not parts["val"]:
        print("labelsky: no 'val' split: checkpoints and early stopping follow the training loss", file=sys.stderr)
    cfg = TransferConfig(backbone=a.backbone, weights=a.weights, bands=a.bands, stretch=a.stretch,
                         mask_channel=a.mask_channel, image_size=a.image_size, max_epochs=a.epochs,
                         head_epochs=a.head_epochs,
                         unfreeze_every=a.unfreeze_every, batch_size=a.batch_size, lr=a.lr, patience=a.patience,
                         seed=a.seed, device=a.device, num_workers=a.workers, **_dist(a))
    model = train_classifier(a.out, parts["train"], parts["val"], classes, cfg, overwrite=a.overwrite)
    if not _rank_zero():
        return 0
    print(f"trained {cfg.backbone} ({model.weights_info.get('weights') or 'random init'}) -> "
          f"{a.out / 'checkpoints' / 'best.ckpt'}")
    return 0


def _load_run(run: Path):
    """The best model of a run folder (any method)."""
    from labelsky.runs import load_run

    return load_run(run)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="metrics of a trained run on a dataset split")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test", help="split to evaluate, or 'all'")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a) -> int:
    import numpy as np

    from labelsky.data.io import DatasetError, open_dataset
    from labelsky.evaluate.figures import confusion_figure, curve_figure
    from labelsky.evaluate.metrics import classification_report, confident_accuracy_curve
    from labelsky.training import predict
    from labelsky.utils import atomic_write_json

    model = _load_run(a.run)
    ds = open_dataset(a.data)
    if ds.classes != list(model.hparams.class_names):
        raise DatasetError(f"{ds.path}: classes {ds.classes} differ from the model's {list(model.hparams.class_names)}")
    label = ds.column("label")
    rows = np.flatnonzero(label >= 0) if a.split == "all" else np.flatnonzero((ds.column("split") == a.split)
                                                                               & (label >= 0))
    if not len(rows):
        raise DatasetError(f"{ds.path}: no labelled rows in split {a.split!r}")
    p = predict(model, ds, rows, model.cfg, device=a.device, embed=False)["probs"]
    rep = classification_report(label[rows], p.argmax(1), len(ds.classes), ds.classes)
    rep["confidence_curve"] = confident_accuracy_curve(p, label[rows])
    rep.update(dataset=str(ds.path), survey=ds.survey.name, split=a.split)
    name = f"eval_{ds.survey.name}_{a.split}"
    atomic_write_json(a.run / f"{name}.json", rep)
    confusion_figure(rep["confusion_matrix"], ds.classes, a.run / "figures" / f"{name}_confusion.png")
    curve_figure(rep["confidence_curve"], a.run / "figures" / f"{name}_confidence.png")
    print(f"{ds.survey.name} {a.split}: n={rep['n']} accuracy={rep['accuracy']:.4f} F1={rep['f1']:.4f} "
          f"-> {a.run / (name + '.json')}")
    return 0


def _job_identity(run: Path, pre) -> dict:
    """What makes a catalog: the exact checkpoint file and the preprocessing (parts of two never mix)."""
    from labelsky.runs import run_checkpoint

    ckpt = run_checkpoint(run)
    st = ckpt.stat()
    return {"run": str(run.resolve()), "checkpoint": str(ckpt.resolve()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "preprocess": pre.describe()}


def _add_catalog(sub):
    p = sub.add_parser("catalog", help="run a trained model over a dataset into a catalog")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", "-o", required=True, type=Path,
                   help="catalog: FILE.parquet (one file), FILE.fits, or a folder (Parquet part per shard + "
                        "_metadata, for very large catalogs)")
    p.add_argument("--format", choices=["parquet", "fits", "partitioned"], default=None,
                   help="default: from --out (.parquet, .fits, else partitioned)")
    p.add_argument("--embedding", action="store_true", help="add the penultimate-layer vector")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="local engine: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: one process, I/O overlapped with compute; ray: Ray Data actor pool")
    p.add_argument("--address", default=None, help="ray: cluster address (default: start a local Ray)")
    p.add_argument("--ray-workers", type=int, default=None, help="ray: actors (default: fill the cluster)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs per actor (e.g. 1, or 0.5)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs (and torch threads) per actor")
    p.add_argument("--domain", choices=["source", "target"], default="target",
                   help="adapted models: whose batch-norm statistics to use (default: target)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_catalog)


def cmd_catalog(a) -> int:
    from labelsky.catalog.predictor import RunPredictor
    from labelsky.catalog.writer import write_catalog
    from labelsky.data.io import open_dataset

    ds = open_dataset(a.data)
    device = a.device if a.engine == "local" else ("cuda" if a.gpus_per_worker else "cpu")
    predictor = RunPredictor(a.run, device=device, domain=a.domain)
    pre = predictor.preprocess(ds)
    out = write_catalog(ds, a.out, predictor, pre, batch_size=a.batch_size, embedding=a.embedding, fmt=a.format,
                        job=_job_identity(a.run, pre), engine=a.engine, ray_address=a.address,
                        ray_workers=a.ray_workers, gpus_per_worker=a.gpus_per_worker,
                        cpus_per_worker=a.cpus_per_worker, overwrite=a.overwrite)
    print(f"{len(ds)} rows -> {out}")
    return 0


def _add_adapt(sub):
    p = sub.add_parser("adapt", help="universal domain adaptation from a labelled source to an unlabelled target")
    p.add_argument("--source", required=True, type=Path, help="labelled source dataset (splits train / val)")
    p.add_argument("--target", required=True, type=Path, help="target dataset (labels, if any, only for evaluation)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--method", choices=["deepastrouda", "dance", "source_only"], default="deepastrouda")
    p.add_argument("--known", nargs="+", default=None, help="known (source) classes; default: all source classes")
    p.add_argument("--backbone", default="resnet50", help="any timm name (paper: ResNet-50 from scratch)")
    p.add_argument("--weights", default=None, help="local weight file for the backbone")
    p.add_argument("--bands", nargs="+", default=None)
    p.add_argument("--stretch", choices=["asinh", "khan", "standardize", "none"], default="asinh")
    p.add_argument("--noise-survey", default=None, help="asinh softening from this survey's noise for both domains "
                                                       "(default: each dataset's own survey)")
    p.add_argument("--mask-channel", action="store_true", help="add a bad-pixel channel (imported data)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-tuner", dest="tuner", action="store_false", help="hold rho and m fixed")
    p.add_argument("--dsbn", action=argparse.BooleanOptionalAction, default=None,
                   help="domain-specific batch norm (default: on for deepastrouda, off for dance / source_only; "
                        "off = one shared batch norm, separate forward passes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    _add_distributed(p)
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.methods.uda.module import UDAConfig
    from labelsky.methods.uda.run import adapt

    src, tgt = open_dataset(a.source), open_dataset(a.target)
    known = a.known or list(src.classes)
    cfg = UDAConfig(method=a.method, backbone=a.backbone, weights=a.weights, bands=a.bands, max_epochs=a.epochs,
                    stretch=a.stretch, noise_survey=a.noise_survey, mask_channel=a.mask_channel,
                    batch_size=a.batch_size, lr=a.lr, tuner=a.tuner, dsbn=a.dsbn, seed=a.seed, device=a.device,
                    num_workers=a.workers, **_dist(a))
    _, reports = adapt(a.out, src, tgt, known, cfg, overwrite=a.overwrite)
    if not _rank_zero():
        return 0
    for name in ("source_test", "target_test"):
        if name in reports:
            r = reports[name]
            print(f"{name}: n={r['n']} accuracy={r['accuracy']:.4f} F1={r['f1']:.4f} unknown accuracy="
                  f"{r['unknown_accuracy']:.4f} AUROC={r['auroc']:.4f}")
    print(f"run: {a.out}; metrics: {a.out / 'eval.json'}")
    return 0


def _add_semisup(sub):
    p = sub.add_parser("semisup", help="semi-supervised vote fractions with the Equivariant-Transformer VAE")
    p.add_argument("--data", required=True, type=Path, help="dataset with Galaxy Zoo votes (votes_* columns)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--regime", choices=["supervised", "semi", "two_step"], default="semi")
    p.add_argument("--labels", type=int, default=None, help="use only this many labelled (voted) training "
                                                           "galaxies; the rest of the training split is unlabelled")
    p.add_argument("--no-et", dest="et", action="store_false", help="without the Equivariant Transformer layers")
    p.add_argument("--likelihood", choices=["multinomial", "dirichlet_multinomial"], default="multinomial")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--head-on", choices=["latent", "features"], default="latent")
    p.add_argument("--bands", nargs="+", default=None)
    p.add_argument("--image-size", type=int, default=None, help="resize to this side (a multiple of 8)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--pretrain-epochs", type=int, default=10, help="two_step: VAE epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    _add_distributed(p)
    p.set_defaults(func=cmd_semisup)


def cmd_semisup(a) -> int:
    import numpy as np

    from labelsky.data.io import DatasetError, open_dataset
    from labelsky.methods.semisup.module import SemiSupConfig, fit_semisup, predict_votes, vote_rmse
    from labelsky.utils import atomic_write_json

    ds = open_dataset(a.data)
    split = ds.column("split").astype(str)
    voted = sum(ds.column(c) for c in ("votes_smooth", "votes_featured", "votes_artifact")) > 0
    pool = np.flatnonzero(np.isin(split, ["train", "unlabelled"]))
    labelled = np.flatnonzero((split == "train") & voted)
    if a.labels is not None:
        labelled = np.sort(np.random.default_rng(a.seed).permutation(labelled)[:a.labels])
    val, test = np.flatnonzero((split == "val") & voted), np.flatnonzero((split == "test") & voted)
    for name, rows in (("labelled training", labelled), ("validation", val)):
        if not len(rows):
            raise DatasetError(f"{ds.path}: no {name} galaxies with votes (votes_* > 0 and split train / val)")
    cfg = SemiSupConfig(regime=a.regime, latent_dim=a.latent_dim, et_groups=["translation", "rotation_scale"]
                        if a.et else [], likelihood=a.likelihood, head_on=a.head_on, bands=a.bands,
                        image_size=a.image_size, max_epochs=a.epochs, pretrain_epochs=a.pretrain_epochs,
                        batch_size=a.batch_size, lr=a.lr, seed=a.seed, device=a.device, num_workers=a.workers,
                        **_dist(a))
    model = fit_semisup(a.out, ds, labelled, pool, val, cfg, overwrite=a.overwrite)
    if not _rank_zero():
        return 0
    report = {"n_labelled": int(len(labelled)), "n_unlabelled": int(len(pool)), "n_test": int(len(test))}
    if len(test):
        pred = predict_votes(model, ds, test)
        report["test_rmse"] = vote_rmse(pred["fractions"], pred["counts"])
        print(f"test: {len(test)} galaxies, RMSE of vote fractions {report['test_rmse']:.4f}")
    atomic_write_json(a.out / "eval.json", report)
    print(f"run: {a.out}; figures: {a.out / 'figures'}")
    return 0


def _add_pretrain(sub):
    p = sub.add_parser("pretrain", help="self-supervised pretext training: which band / which colour order")
    p.add_argument("--data", required=True, type=Path, help="multi-band dataset (no labels needed)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder (extractor.pt for later use)")
    p.add_argument("--task", choices=["bands", "channel-order"], default="bands")
    p.add_argument("--bands", nargs="+", default=None, help="bands: the bands to use; channel-order: three bands")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--weights", default=None, help="local weight file for the backbone")
    p.add_argument("--feature-dim", type=int, default=512)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--baseline", action="store_true", help="also score a summary-statistics classifier")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    _add_distributed(p)
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(a) -> int:
    import numpy as np

    from labelsky.data.io import open_dataset
    from labelsky.methods.selfsup.pretext import PretextConfig, fit_pretext, statistics_baseline
    from labelsky.methods.selfsup.richness import grouped_folds
    from labelsky.utils import atomic_write_json

    ds = open_dataset(a.data)
    groups = ds.column("cluster_id") if "cluster_id" in ds.catalog.column_names else ds.column("id_str")
    fold = grouped_folds(groups, 5, a.seed)
    tr, va = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    task = "bands" if a.task == "bands" else "channel_order"
    cfg = PretextConfig(task=task, backbone=a.backbone, weights=a.weights, feature_dim=a.feature_dim,
                        bands=a.bands if task == "bands" else None, rgb_bands=a.bands if task != "bands" else None,
                        image_size=a.image_size, max_epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                        device=a.device, num_workers=a.workers, **_dist(a))
    fit_pretext(a.out, ds, tr, va, cfg, overwrite=a.overwrite)
    if not _rank_zero():
        return 0
    report = {"n_train": int(len(tr)), "n_val": int(len(va))}
    if a.baseline and task == "bands":
        from labelsky.data.transforms import Preprocess

        report["stats_raw_accuracy"] = statistics_baseline(ds, tr, va, seed=a.seed)
        report["stats_normalised_accuracy"] = statistics_baseline(
            ds, tr, va, Preprocess([0], noise=[1.0], stretch=cfg.stretch, softening=cfg.softening), seed=a.seed)
        print(f"summary-statistics classifier: raw {report['stats_raw_accuracy']:.3f}, "
              f"normalised {report['stats_normalised_accuracy']:.3f}")
    atomic_write_json(a.out / "eval.json", report)
    print(f"run: {a.out}; extractor weights: {a.out / 'extractor.pt'}")
    return 0


def _add_richness(sub):
    p = sub.add_parser("richness", help="cluster richness from band images: cross-validated Base vs pretrained")
    p.add_argument("--data", required=True, type=Path, help="cluster dataset (richness and cluster_id columns)")
    p.add_argument("--out", "-o", required=True, type=Path, help="folder for results.json")
    p.add_argument("--extractor", type=Path, default=None, help="extractor.pt of `labelsky pretrain` (Ours)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--feature-dim", type=int, default=512)
    p.add_argument("--fc-widths", type=int, nargs="+", default=[1024, 512])
    p.add_argument("--freeze", action="store_true", help="keep the extractor fixed (only the head trains)")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of std(|y - y_hat|) in the loss")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.5, 1.0])
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_richness)


def cmd_richness(a) -> int:
    from labelsky.data.io import DatasetError, open_dataset
    from labelsky.methods.selfsup.richness import RichnessConfig, cross_validate, load_extractor_state
    from labelsky.utils import atomic_write_json

    ds = open_dataset(a.data)
    for col in ("richness", "cluster_id"):
        if col not in ds.catalog.column_names:
            raise DatasetError(f"{ds.path}: no {col!r} column; richness needs cluster fields (labelsky simulate "
                               f"--kind clusters, or an imported catalog with these columns)")
    state = load_extractor_state(a.extractor) if a.extractor else None
    cfg = RichnessConfig(backbone=a.backbone, feature_dim=a.feature_dim, fc_widths=a.fc_widths, alpha=a.alpha,
                         freeze_extractor=a.freeze, epochs=a.epochs, lr=a.lr, seed=a.seed)
    res = cross_validate(ds, cfg, fractions=tuple(a.fractions), folds=a.folds, repeats=a.repeats, pretrained=state)
    res["extractor"] = str(a.extractor) if a.extractor else None
    atomic_write_json(a.out / "results.json", res)
    for model in ("base", "ours") if state is not None else ("base",):
        for q in a.fractions:
            c = res["summary"][model][str(q)]
            print(f"{model} {100 * q:g} %: MAE {c['mae']['mean']:.4f} ± {c['mae']['std']:.4f}, "
                  f"Sigma {c['sigma']['mean']:.4f} ± {c['sigma']['std']:.4f}")
    print(f"results: {a.out / 'results.json'}")
    return 0


def _add_reproduce(sub):
    p = sub.add_parser("reproduce", help="reproduce a paper on the simulator")
    p.add_argument("paper", choices=["khan2019", "deepastrouda", "etvae", "owg"])
    p.add_argument("--experiment", default="lsst-y1-y10",
                   help="deepastrouda: lsst-y1-y10 | lsst-y10-y1 | sdss-decals | sdss-stripe82")
    p.add_argument("--out", "-o", type=Path, default=None, help="run folder (default: runs/<paper>[-<experiment>])")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in a couple of minutes")
    p.add_argument("--n", type=int, default=None, help="number of simulated galaxies")
    p.add_argument("--backbone", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="deepastrouda: initial learning rate")
    p.add_argument("--methods", nargs="+", default=None, help="deepastrouda: source_only dance deepastrouda")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="deepastrouda, etvae: training seeds")
    p.add_argument("--stretch", choices=["fixed", "survey"], default=None,
                   help="deepastrouda: one asinh stretch set by the source survey's noise (fixed, default) or each "
                        "survey's own (survey)")
    p.add_argument("--rounds", type=int, default=None, help="khan2019: recursive-training rounds")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=0, help="simulation (and khan2019 training) seed")
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(a) -> int:
    if a.paper == "owg":
        from labelsky.reproduce.owg import OWGConfig, run_owg

        over = {k: v for k, v in (("n_clusters", a.n), ("backbone", a.backbone)) if v is not None}
        rc = (OWGConfig.quick if a.quick else OWGConfig)(workers=a.workers, seed=a.seed, **over)
        out = a.out or Path("runs") / "owg"
        run_owg(out, rc)
        print((out / "table.md").read_text())
        print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
        return 0
    if a.paper == "etvae":
        from labelsky.reproduce.etvae import ETVAEReproConfig, run_etvae

        over = {k: v for k, v in (("n_objects", a.n), ("epochs", a.epochs), ("seeds", a.seeds)) if v is not None}
        rc = (ETVAEReproConfig.quick if a.quick else ETVAEReproConfig)(workers=a.workers, sim_seed=a.seed, **over)
        out = a.out or Path("runs") / "etvae"
        run_etvae(out, rc)
        print((out / "table.md").read_text())
        print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
        return 0
    if a.paper == "deepastrouda":
        from labelsky.reproduce.deepastrouda import ReproConfig, run_deepastrouda

        over = {k: v for k, v in (("n_objects", a.n), ("backbone", a.backbone), ("epochs", a.epochs),
                                  ("lr", a.lr), ("methods", a.methods), ("seeds", a.seeds),
                                  ("stretch", a.stretch)) if v is not None}
        rc = (ReproConfig.quick if a.quick else ReproConfig)(experiment=a.experiment, workers=a.workers,
                                                             sim_seed=a.seed, **over)
        out = a.out or Path("runs") / f"deepastrouda-{a.experiment}"
        run_deepastrouda(out, rc)
        print((out / "table.md").read_text())
        print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
        return 0
    from labelsky.reproduce.khan2019 import KhanConfig, run_khan2019

    over = {k: v for k, v in (("n_objects", a.n), ("backbone", a.backbone), ("rounds", a.rounds),
                              ("epochs", a.epochs)) if v is not None}
    kc = (KhanConfig.quick if a.quick else KhanConfig)(workers=a.workers, seed=a.seed, **over)
    out = a.out or Path("runs") / a.paper
    run_khan2019(out, kc)
    print((out / "table_ii.md").read_text())
    print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="run the embedded default end to end on this machine (a few minutes)")
    p.add_argument("--out", "-o", type=Path, default=Path("labelsky-demo"))
    p.add_argument("--n", type=int, default=1500, help="galaxies to simulate")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)


def cmd_demo(a) -> int:
    """A small Khan et al. 2019 run: SDSS-labelled galaxies, DES target, catalog of the DES galaxies."""
    from labelsky.catalog.writer import model_predict_fn, write_catalog
    from labelsky.data.display import mosaic
    from labelsky.data.simulate import open_simulation
    from labelsky.methods.transfer import load_classifier
    from labelsky.reproduce.khan2019 import KhanConfig, run_khan2019

    t0 = time.time()
    kc = KhanConfig.quick(n_objects=a.n, pretrain_objects=max(160, a.n // 2), epochs=10, pretrain_epochs=4,
                          top_k=max(10, a.n // 20), workers=a.workers, seed=a.seed)
    res = run_khan2019(a.out, kc)
    datasets = open_simulation(a.out / "sim")
    figures = [str(mosaic(ds, a.out / "figures" / f"mosaic_{name}.png")) for name, ds in datasets.items()]
    model = load_classifier(a.out / f"round{kc.rounds}" / "checkpoints" / "best.ckpt")
    des = datasets["des"]
    pre = model.cfg.preprocess(des)
    catalog = write_catalog(des, a.out / "catalog_des.parquet", model_predict_fn(model), pre,
                            list(model.hparams.class_names), overwrite=True, job={"demo": str(a.out)})
    table = res["rounds"][0]["table"]
    summary = {
        "datasets": {name: {"path": str(ds.path), "n": len(ds), "bands": ds.bands,
                            "image_shape": list(ds.image_shape)} for name, ds in datasets.items()},
        "accuracy": {k: v["accuracy"] for k, v in table.items()},
        "fo_des_by_round": [r["table"]["FO DES"]["accuracy"] for r in res["rounds"]],
        "catalog": str(catalog),
        "figures": figures + [str(a.out / "figures" / "tsne.png"), str(a.out / "figures" / "recursion.png")],
        "seconds": round(time.time() - t0, 1),
    }
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print((a.out / "table_ii.md").read_text())
    print(f"catalog of {len(des)} DES galaxies: {catalog}")
    for f in summary["figures"]:
        print(f"figure: {f}")
    print(f"done in {summary['seconds']} s; summary: {a.out / 'summary.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labelsky import __version__

    parser = argparse.ArgumentParser(prog="labelsky",
                                     description="labelsky: galaxy morphology, anomaly and cluster-richness catalogs "
                                                 "from few labels and many survey images.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"labelsky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_surveys(sub)
    _add_simulate(sub)
    _add_show(sub)
    _add_crossmatch(sub)
    _add_import(sub)
    _add_validate(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_catalog(sub)
    _add_adapt(sub)
    _add_semisup(sub)
    _add_pretrain(sub)
    _add_richness(sub)
    _add_reproduce(sub)
    _add_demo(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from labelsky.errors import LabelskyError, one_line

    try:
        return int(args.func(args) or 0)
    except LabelskyError as err:
        print(f"labelsky: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused: a path under a file, a read-only or full disk, ...
        print(f"labelsky: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labelsky: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
