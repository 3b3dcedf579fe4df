"""Data commands: surveys, simulate, show, crossmatch, import, validate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labelsky.cli.options import add_out, add_overwrite, add_seed


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


def _mag_limit_arg(text: str) -> tuple:
    name, sep, value = text.partition("=")
    try:
        if not (sep and name):
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SURVEY=MAGNITUDE, e.g. sdss=17.0") from None


def add_surveys(sub):
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


def add_simulate(sub):
    p = sub.add_parser("simulate", help="simulate cutouts or cluster fields seen by several surveys",
                       description="Simulate the same sky observed by several surveys; writes one labelsky "
                                   "dataset per survey under OUT.")
    add_out(p)
    p.add_argument("--kind", choices=["galaxies", "clusters"], default="galaxies")
    p.add_argument("--surveys", "-s", nargs="+", default=None,
                   help="survey names or YAML files (default: sdss des for galaxies, sdss for clusters)")
    p.add_argument("--n", type=int, default=1000, help="number of galaxies (or clusters)")
    p.add_argument("--sample", default=None, metavar="NAME",
                   help="draw the sample a paper drew: khan2019, deepastrouda, etvae (galaxies) or owg (clusters); "
                        "its surveys, magnitude limits and framing, under any option given explicitly "
                        "(docs/samples.md)")
    p.add_argument("--classes", type=_classes_arg, default=None,
                   help="class proportions, e.g. 'elliptical=0.5,spiral=0.5' (default: every class)")
    p.add_argument("--like", type=Path, default=None, metavar="DATASET",
                   help="galaxies: measure your own images (framing, S/N, PSF, neighbours, magnitudes) and simulate "
                        "galaxies that look like them; writes OUT/like.md, like.json and like.png (docs/no_labels.md)")
    p.add_argument("--render", default=None, metavar="VIEWER",
                   help="--like with 8-bit pictures: the viewer they are compared through (default legacysurvey)")
    p.add_argument("--stamp-size", type=int, default=None, help="cutout side in pixels (default: survey's)")
    p.add_argument("--cutout", choices=["fixed", "scaled"], default=None,
                   help="fixed (default): native pixels; scaled: field of view --scaled-fov half-light radii "
                        "(Galaxy Zoo style)")
    p.add_argument("--scaled-fov", type=float, default=None, metavar="RADII",
                   help="--cutout scaled: stamp side in half-light radii (default 17; the deepastrouda sample: 12)")
    p.add_argument("--field-of-view", type=int, default=None, metavar="PIXELS",
                   help="galaxies: stamps span this many of each survey's own pixels (papers crop 256), drawn at "
                        "--stamp-size pixels")
    p.add_argument("--overlap", type=float, default=None, help="fraction of objects seen by every survey "
                                                                   "(default 1)")
    p.add_argument("--mag-range", type=float, nargs=2, default=None, metavar=("BRIGHT", "FAINT"),
                   help="r magnitudes of the galaxies (default 15 19)")
    p.add_argument("--mag-limit", type=_mag_limit_arg, nargs="+", default=None, metavar="SURVEY=MAG",
                   help="galaxies: each survey's own faint limit, e.g. sdss=17.0 decals=17.77")
    add_seed(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="objects per shard (default: n/8 between 16 and 256 galaxies; 64 clusters)")
    add_overwrite(p)
    p.add_argument("--npix", type=int, default=128, help="clusters: image side in pixels")
    p.add_argument("--views", type=int, default=1, help="clusters: images per cluster")
    p.add_argument("--field-mpc", type=float, default=None, help="clusters: image side in physical Mpc (default 1)")
    for name, what in (("stars", "foreground stars"), ("field-galaxies", "neighbouring field galaxies"),
                       ("sky-residuals", "sky-subtraction residuals"), ("source-noise", "source Poisson noise"),
                       ("saturation", "saturation and bleeding (galaxies only)"), ("noise", "all noise")):
        p.add_argument(f"--no-{name}", dest=name.replace("-", "_"), action="store_false", help=f"switch off {what}")
    p.add_argument("--randomise", nargs="?", const="", default=None, metavar="NAME=LOW:HIGH,...",
                   help="galaxies: domain randomisation, every object draws its own nuisance levels (rand_* "
                        "columns); alone: the default ranges psf=0.7:1.5,depth=-1:0.5,sky-residuals=0:2,"
                        "stars=0:2,field-galaxies=0:2,gain=0.9:1.1,saturation=0.5:2; items override them "
                        "(NAME=VALUE fixes a level)")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(a) -> int:
    switches = dict(stars=a.stars, field_galaxies=a.field_galaxies, sky_residuals=a.sky_residuals,
                    source_noise=a.source_noise, noise=a.noise)
    if a.like is not None:
        return _simulate_like(a)
    if a.render is not None:
        from labelsky.data.simulate import SimulationError

        raise SimulationError("--render is for --like (the viewer your pictures are compared through)")
    if a.kind == "galaxies":
        from labelsky.data.simulate import parse_randomisation, simulate_galaxies
        from labelsky.data.simulate.samples import sample_settings

        explicit = dict(surveys=a.surveys, cutout=a.cutout, mag_range=tuple(a.mag_range) if a.mag_range else None,
                        mag_limits=dict(a.mag_limit) if a.mag_limit else None, field_of_view=a.field_of_view,
                        overlap=a.overlap, scaled_fov=a.scaled_fov)
        if a.sample:
            chosen = {**sample_settings(a.sample, "galaxies", **explicit), "sample": a.sample}
        else:
            chosen = {"surveys": ["sdss", "des"], **{k: v for k, v in explicit.items() if v is not None}}
        kwargs = dict(n_objects=a.n, stamp_size=a.stamp_size, seed=a.seed,
                      shard_size=a.shard_size, saturation=a.saturation, **chosen, **switches)
        if a.randomise is not None:
            kwargs["randomise"] = parse_randomisation(a.randomise)
        if a.classes:
            kwargs["classes"] = a.classes
        result = simulate_galaxies(a.out, workers=a.workers, overwrite=a.overwrite, **kwargs)
    else:
        from labelsky.data.simulate.clusters import simulate_clusters

        if a.randomise is not None:
            from labelsky.data.simulate import SimulationError

            raise SimulationError("--randomise: domain randomisation is for --kind galaxies only")

        for opt, value in (("--overlap", a.overlap), ("--mag-range", a.mag_range), ("--mag-limit", a.mag_limit),
                           ("--field-of-view", a.field_of_view), ("--cutout", a.cutout),
                           ("--scaled-fov", a.scaled_fov)):
            if value is not None:
                from labelsky.data.simulate import SimulationError

                raise SimulationError(f"{opt} is for --kind galaxies (cluster fields: --field-mpc, --npix)")
        chosen = {"surveys": a.surveys or ["sdss"], "field_mpc": a.field_mpc or 1.0}
        if a.sample:
            from labelsky.data.simulate.samples import sample_settings

            chosen = sample_settings(a.sample, "clusters", surveys=a.surveys, field_mpc=a.field_mpc)
        result = simulate_clusters(a.out, workers=a.workers, overwrite=a.overwrite, n_clusters=a.n,
                                   views_per_cluster=a.views, npix=a.npix, seed=a.seed,
                                   shard_size=a.shard_size or 64, **chosen, **switches)
    for name, ds in result.items():
        print(f"{name}: {len(ds)} objects, bands {''.join(ds.bands)}, images {ds.image_shape} -> {ds.path}")
    if a.kind == "galaxies":
        _write_sample_reports(a.out, result)
    return 0


def _simulate_like(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate import SimulationError
    from labelsky.data.simulate.like import simulate_like

    unused = [opt for opt, v in (("--sample", a.sample), ("--mag-range", a.mag_range), ("--mag-limit", a.mag_limit),
                                 ("--field-of-view", a.field_of_view), ("--cutout", a.cutout),
                                 ("--scaled-fov", a.scaled_fov),
                                 ("--randomise", a.randomise), ("--overlap", a.overlap)) if v is not None]
    if a.kind != "galaxies" or unused:
        raise SimulationError(f"--like sets the framing, magnitudes and noise itself; it does not take "
                              f"{', '.join(unused) or '--kind clusters'}")
    if a.surveys and len(a.surveys) > 1:
        raise SimulationError("--like simulates one survey; give one with --surveys")
    rep = simulate_like(open_dataset(a.like), a.out, n_objects=a.n, survey=a.surveys[0] if a.surveys else None,
                        render=a.render or "auto", stamp_size=a.stamp_size, classes=a.classes, seed=a.seed,
                        workers=a.workers, overwrite=a.overwrite)
    print(Path(a.out, "like.md").read_text(), end="")
    print(f"{len(open_dataset(Path(a.out) / rep['survey']['name']))} simulated galaxies -> "
          f"{Path(a.out) / rep['survey']['name']}; report {Path(a.out) / 'like.md'}, figure {Path(a.out) / 'like.png'}")
    return 0


def _write_sample_reports(out: Path, datasets: dict) -> None:
    """Per survey: the sample's magnitudes, sizes and resolved fractions, printed and written beside the data."""
    from labelsky.data.sample_report import format_sample_report, sample_figure, sample_report
    from labelsky.utils import atomic_write_json

    for name, ds in datasets.items():
        report = sample_report(ds)
        atomic_write_json(Path(out) / f"sample_{name}.json", report)
        sample_figure(ds, report, Path(out) / f"sample_{name}.png")
        print(format_sample_report(report))
    print(f"sample reports: {Path(out) / 'sample_<survey>.json'} and .png")


def _datasets_at(path: Path) -> dict:
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate.stamps import open_simulation

    if (path / "simulation.json").exists():
        return open_simulation(path)
    ds = open_dataset(path)
    return {ds.survey.name: ds}


def add_show(sub):
    from labelsky.data.display import COLOUR_METHODS

    p = sub.add_parser("show", help="colour mosaics of a dataset or simulation, one row per class")
    p.add_argument("path", type=Path, help="a dataset folder or a simulation folder")
    add_out(p, "folder for PNGs (default: PATH/figures)", required=False)
    p.add_argument("--per-class", type=int, default=6)
    p.add_argument("--method", choices=list(COLOUR_METHODS), default="lupton",
                   help="colour method; sdss, legacysurvey and hsc render as those survey viewers do "
                        "(bands i r g, z r g, i r g)")
    p.add_argument("--jpeg-quality", type=int, default=None, metavar="Q",
                   help="JPEG-encode each picture at quality Q (1-100) first, as viewers serve them "
                        "(Legacy Survey viewer: 90)")
    p.add_argument("--black-point", type=float, default=0.0, metavar="LEVEL",
                   help="a renderer's black point, as trained with --black-point (simulate --like prints it)")
    add_seed(p)
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs")
    p.set_defaults(func=cmd_show)


def cmd_show(a) -> int:
    from labelsky.data.display import RENDERERS, mosaic
    from labelsky.errors import SettingsError

    datasets = _datasets_at(a.path)
    out = a.out or (a.path / "figures")
    if a.jpeg_quality is not None and any(_is_cluster_fields(ds) for ds in datasets.values()):
        raise SettingsError(f"{a.path}: --jpeg-quality applies to galaxy mosaics, not to cluster fields")
    if a.black_point and any(_is_cluster_fields(ds) for ds in datasets.values()):
        raise SettingsError(f"{a.path}: --black-point applies to galaxy mosaics, not to cluster fields")
    need = RENDERERS[a.method].bands if a.method in RENDERERS else ()
    for ds in datasets.values():
        missing = [b for b in need if b not in ds.bands]
        if missing:
            raise SettingsError(f"{ds.path}: renderer {a.method!r} (--method) needs bands {list(need)}; missing "
                                f"{missing} (available: {list(ds.bands)})")
    for name, ds in datasets.items():
        if _is_cluster_fields(ds):  # a row of fields from poor to rich
            png = _field_strip(ds, out / f"fields_{name}.png", a.per_class, a.method)
        else:  # one row per class; random objects of an unlabelled dataset
            png = mosaic(ds, out / f"mosaic_{name}.png", per_class=a.per_class, method=a.method, seed=a.seed,
                         dpi=a.dpi, jpeg_quality=a.jpeg_quality, black_point=a.black_point)
        print(png)
    return 0


def _is_cluster_fields(ds) -> bool:
    """A dataset of galaxy-cluster fields (``labelsky simulate --kind clusters``, richness labels)."""
    return not ds.classes and "cluster_id" in ds.catalog.column_names


def _field_strip(ds, out: Path, n: int, method: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from labelsky.data.display import picture_of

    n = min(n, len(ds))
    rich = ds.column("richness")
    order = np.argsort(rich)[np.linspace(0, len(ds) - 1, n).astype(int)] if n else []
    fig, axes = plt.subplots(1, max(n, 1), figsize=(2.0 * max(n, 1), 2.3), squeeze=False)
    for ax, i in zip(axes[0], order):
        rgb, origin = picture_of(ds, int(i), method)
        ax.imshow(rgb, origin=origin)
        ax.set_title(f"lambda={rich[i]:.0f}" if np.isfinite(rich[i]) else "richness unknown", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def add_crossmatch(sub):
    p = sub.add_parser("crossmatch", help="match two datasets by sky position into two aligned datasets",
                       description="Match dataset A to dataset B by ra / dec; write OUT/<survey of A> and "
                                   "OUT/<survey of B> holding only the matched objects, row k of both being the "
                                   "same object, and OUT/crossmatch.json with the report.")
    p.add_argument("a", metavar="A", type=Path, help="dataset A (its id_str is kept for both outputs)")
    p.add_argument("b", metavar="B", type=Path, help="dataset B")
    add_out(p)
    p.add_argument("--radius", type=float, default=1.0, help="largest separation of a match, arcsec (default 1)")
    add_overwrite(p)
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


def add_import(sub):
    p = sub.add_parser("import", help="import real survey data (FITS, Galaxy10, pictures, detections) into a "
                                      "labelsky dataset",
                       description="Streaming, resumable import: rerun the same command to resume. Every object "
                                   "left out or flagged is listed in OUT/import_report.json.")
    p.add_argument("kind", choices=["fits-cutouts", "fits-images", "galaxy10", "pictures", "detect"],
                   help="fits-cutouts: one FITS file per object (catalog column 'file'); fits-images: cutouts "
                        "from large FITS images with WCS (--image BAND=FILE ...); galaxy10: a Galaxy10 DECaLS "
                        "HDF5 file; pictures: PNG / JPEG colour cutouts (catalog column 'file'); detect: find the "
                        "sources of one large image (PNG / JPEG or FITS) and import them as unlabelled cutouts")
    p.add_argument("source", type=Path, nargs="?", default=None,
                   help="catalog (CSV / FITS / Parquet); galaxy10: the HDF5 file; detect: the image")
    add_out(p, "dataset folder")
    p.add_argument("--survey", default=None, help="survey name or YAML file of the images (default: decals for "
                                                  "galaxy10 / pictures / detect on a picture, sdss otherwise)")
    p.add_argument("--bands", nargs="+", default=None, help="band of every image channel, in order")
    p.add_argument("--image", action="append", default=[], metavar="BAND=FILE", help="fits-images: one per band")
    p.add_argument("--size", type=int, default=None, help="output cutout side, pixels (default: fits-cutouts: the "
                   "first readable cutout's side at the survey's pixel scale; pictures: the first picture's; "
                   "galaxy10: as stored; fits-images: the survey's; detect: 64)")
    p.add_argument("--pixel-scale", type=float, default=None, help="fits-cutouts, detect: input arcsec/pixel "
                                                                   "when the files give none")
    p.add_argument("--flux-scale", type=float, default=None, help="multiply FITS data by this to get nanomaggies "
                                                                  "(default: from a zeropoint keyword, else 1)")
    p.add_argument("--classes", nargs="+", default=None, help="class names in label order (integer labels)")
    p.add_argument("--votes", type=Path, default=None, help="a Galaxy Zoo vote table to join by id (id_str, GZ "
                   "DECaLS iauname, GZ DESI dr8_id, GZ2 dr7objid, objid; galaxy10: or by position)")
    p.add_argument("--schema", default=None, choices=["gz2", "decals-dr5", "desi"],
                   help="keep every answer of this Galaxy Zoo decision tree from the vote columns (of --votes or "
                        "the catalog): GZ2 (Hart+16 *_count), GZ DECaLS DR5, GZ DESI (-dr8 columns); default: only "
                        "smooth / featured / artifact")
    p.add_argument("--votes-id", default=None, metavar="COLUMN", help="the vote table's id column (default: the "
                   "first of id_str, iauname, dr8_id, dr7objid, objid it has)")
    p.add_argument("--catalog-id", default=None, metavar="COLUMN", help="the catalog's column matching --votes-id "
                   "(default: a column of the same name, else id_str)")
    p.add_argument("--base-dir", type=Path, default=None, help="folder of relative 'file' paths (default: the "
                                                               "catalog's)")
    p.add_argument("--max-masked", type=float, default=0.2, help="flag cutouts with more bad pixels in a band")
    p.add_argument("--reject-masked", action="store_true", help="leave such cutouts out instead of flagging them")
    p.add_argument("--max-flux", type=float, default=1e9, help="pixels beyond this |value| (nanomaggies) are not "
                   "physical and are masked (default 1e9: magnitude 0 in one pixel)")
    p.add_argument("--max-file-mb", type=float, default=2048, help="largest input file read, MB (default 2048)")
    p.add_argument("--max-pixels", type=int, default=25_000_000, help="largest picture decoded, pixels (default "
                   "25 million; a small PNG can decode to gigabytes)")
    p.add_argument("--allow-outside-base", action="store_true", help="read 'file' paths outside --base-dir "
                   "(absolute paths, '..'); refused by default")
    p.add_argument("--shard-size", type=int, default=256, help="objects per shard file (default 256); an "
                   "interrupted import resumes at the first missing shard")
    d = p.add_argument_group("detect")
    d.add_argument("--example", default=None, choices=["hubble-deep-field"],
                   help="detect in a bundled image instead of SOURCE (hubble-deep-field: the Hubble Deep Field "
                        "picture of scikit-image)")
    d.add_argument("--threshold", type=float, default=3.0, help="detection threshold, background RMS (default 3)")
    d.add_argument("--npixels", type=int, default=20, help="fewest connected pixels of a source (default 20)")
    d.add_argument("--no-deblend", dest="deblend", action="store_false", help="do not split blended sources")
    d.add_argument("--min-area", type=int, default=None, help="leave out sources of fewer pixels (default "
                                                              "--npixels)")
    d.add_argument("--max-sources", type=int, default=None, help="keep the N brightest sources")
    d.add_argument("--cutout", choices=["fixed", "scaled"], default="fixed",
                   help="fixed: --size image pixels; scaled: 20 x semimajor_sigma (at least --size) resampled "
                        "to --size (Galaxy Zoo style framing)")
    d.add_argument("--edge", choices=["pad", "drop"], default="pad",
                   help="cutouts crossing the image edge: pad with masked pixels (default) or leave out")
    d.add_argument("--box-size", type=int, default=64, help="background box side, pixels (default 64)")
    d.add_argument("--id-prefix", default=None, help="id_str = PREFIX_000123 (default: the image file name)")
    add_seed(p, help="seed of the train/val/test split (when no 'split' column)")
    add_overwrite(p)
    p.set_defaults(func=cmd_import)


def cmd_import(a) -> int:
    from labelsky.data.importers.base import ImportSettings
    from labelsky.data.io import DatasetError

    if a.kind == "detect":
        if a.example is not None and a.source is not None:
            raise DatasetError("import detect: give either IMAGE or --example, not both")
        if a.example is None and a.source is None:
            raise DatasetError("import detect needs an IMAGE (PNG / JPEG or FITS) or --example hubble-deep-field")
        if a.votes is not None:
            raise DatasetError("--votes is for fits-cutouts, galaxy10 and pictures; detected sources have no votes")
    elif a.source is None:
        raise DatasetError(f"import {a.kind} needs a SOURCE (the catalog{', the HDF5 file' * (a.kind == 'galaxy10')})")
    elif a.example is not None:
        raise DatasetError("--example is for import detect")
    if (a.votes_id or a.catalog_id) and a.votes is None:
        raise DatasetError("--votes-id / --catalog-id name the id columns of a --votes join; give --votes")
    if a.kind == "galaxy10" and a.catalog_id:
        raise DatasetError("--catalog-id: galaxy10 ids come from the HDF5 file; use --votes-id only")
    display = a.kind in ("galaxy10", "pictures")
    if a.kind == "detect":
        from labelsky.data.importers.detect import is_fits_file

        display = a.example is not None or not is_fits_file(a.source)
    settings = ImportSettings(survey=a.survey or ("decals" if display else "sdss"), bands=a.bands,
                              classes=a.classes, shard_size=a.shard_size, max_masked=a.max_masked,
                              reject_masked=a.reject_masked, seed=a.seed, max_abs_flux=a.max_flux,
                              max_file_bytes=int(a.max_file_mb * 1024 ** 2), max_pixels=a.max_pixels,
                              allow_outside_base=a.allow_outside_base, vote_schema=a.schema)
    if a.schema and a.kind not in ("fits-cutouts", "pictures"):
        raise DatasetError(f"--schema is for fits-cutouts and pictures (import {a.kind} has no decision-tree votes)")
    if a.votes is not None and a.kind == "fits-images":
        raise DatasetError("--votes is for fits-cutouts, galaxy10 and pictures; put vote columns in the catalog")
    if a.kind == "detect":
        from labelsky.data.importers.detect import EXAMPLES, example_image, import_detections

        image = example_image(a.example) if a.example else a.source
        prefix = a.id_prefix or (EXAMPLES[a.example][2] if a.example else None)
        ds, rep = import_detections(image, a.out, settings=settings, size=64 if a.size is None else a.size,
                                    threshold=a.threshold, npixels=a.npixels, deblend=a.deblend, min_area=a.min_area,
                                    max_sources=a.max_sources, cutout=a.cutout, edge=a.edge,
                                    box_size=a.box_size, flux_scale=a.flux_scale, pixel_scale=a.pixel_scale,
                                    id_prefix=prefix,
                                    overwrite=a.overwrite)
        det = rep["detection"]
        print(f"{image}: {det['n_detected']} source(s) detected above {det['threshold']:g} x the background RMS; "
              f"{det['n_sources']} kept ({det['n_too_small']} below the area limit, {det['n_beyond_max_sources']} "
              f"beyond --max-sources); ra/dec from {det['radec_source']}")
    elif a.kind == "fits-cutouts":
        from labelsky.data.importers.fits import import_fits_cutouts

        ds, rep = import_fits_cutouts(a.source, a.out, settings, base_dir=a.base_dir, size=a.size,
                                      pixel_scale=a.pixel_scale, flux_scale=a.flux_scale, votes=a.votes,
                                      overwrite=a.overwrite, votes_id=a.votes_id, catalog_id=a.catalog_id)
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

        extra = {}
        if a.votes_id:
            from labelsky.data.importers.votes import table_column

            extra["id_column"] = table_column(a.votes, a.votes_id, "--votes-id")
        ds, rep = import_galaxy10(a.source, a.out, settings, votes=a.votes, size=a.size, overwrite=a.overwrite,
                                  **extra)
    else:
        from labelsky.data.importers.base import read_table
        from labelsky.data.importers.pictures import import_pictures
        from labelsky.data.importers.votes import join_votes

        source = a.source
        if a.votes is not None:
            source = join_votes(read_table(a.source), a.votes, votes_id=a.votes_id, catalog_id=a.catalog_id,
                                schema=a.schema)
            j = source.meta["votes_join"]
            print(f"votes: {j['n_matched']} of {j['n_catalog']} objects matched on {j['votes']}:{j['votes_id']} = "
                  f"catalog {j['catalog_id']}")
        ds, rep = import_pictures(source, a.out, settings, base_dir=a.base_dir or a.source.parent, size=a.size,
                                  overwrite=a.overwrite)
    print(f"{ds.path}: {len(ds)} objects written of {rep['n_input']}; {rep['n_rejected']} left out, "
          f"{rep['n_flagged']} flagged (see {ds.path / 'import_report.json'})")
    for p in rep["problems"][:10]:
        print(f"  {p['action']}: row {p['row']} id_str={p['id_str']!r} {p['file']}: {p['reason']}")
    if len(rep["problems"]) > 10:
        print(f"  ... {len(rep['problems']) - 10} more in the report")
    if len(ds) == 0:
        raise DatasetError(f"nothing usable was imported: all {rep['n_input']} rows were left out (reasons in "
                           f"{ds.path / 'import_report.json'})")
    _report_classes(ds, explicit=bool(a.classes))
    return 0


def _report_classes(ds, explicit: bool) -> None:
    """Print the classes found with their counts; warn about a class so rare it may be a typo of another."""
    import numpy as np

    names = ds.column("label_name").astype(str)
    names = names[names != ""]
    if not len(names):
        return
    uniq, counts = np.unique(names, return_counts=True)
    print("classes: " + ", ".join(f"{u} ({c})" for u, c in zip(uniq, counts)))
    rare = [u for u, c in zip(uniq, counts) if c <= max(1, 0.01 * len(names)) and len(uniq) > 1]
    if rare and not explicit:
        print(f"labelsky: warning: class(es) {rare} have very few objects: a typo in the catalog? Pass --classes "
              f"with the class names to make any other name an error", file=sys.stderr)


def add_validate(sub):
    p = sub.add_parser("validate", help="list every problem of a dataset (catalog fields, images, bad pixels)")
    p.add_argument("dataset", type=Path)
    p.add_argument("--max-masked", type=float, default=0.2, help="warn above this fraction of bad pixels in a band")
    p.add_argument("--no-pixels", dest="pixels", action="store_false", help="skip reading the images")
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.add_argument("--no-sample", dest="sample", action="store_false",
                   help="skip the sample report (per class: magnitudes, sizes, fraction resolved)")
    p.add_argument("--sample-rows", type=int, default=500,
                   help="images measured for the sample report where the catalog has no truth (default 500)")
    p.add_argument("--sample-figure", type=Path, default=None, metavar="PNG",
                   help="also draw the sample report (histograms per class) into this file")
    p.set_defaults(func=cmd_validate)


def cmd_validate(a) -> int:
    from labelsky.data.validate import validate_dataset

    if not a.dataset.is_dir():
        from labelsky.data.io import DatasetError

        raise DatasetError(f"{a.dataset}: no such dataset folder")
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
    if a.sample and not n_err and not a.json:
        from labelsky.data.io import open_dataset
        from labelsky.data.sample_report import format_sample_report, sample_figure, sample_report

        ds = open_dataset(a.dataset)
        if ds.meta.get("kind") == "clusters":  # fields, not one galaxy each
            return 0
        report = sample_report(ds, max_rows=a.sample_rows)
        print(format_sample_report(report))
        if a.sample_figure:
            sample_figure(ds, report, a.sample_figure)
            print(f"sample figure: {a.sample_figure}")
    return 1 if n_err else 0
