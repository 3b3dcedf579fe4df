"""``labelsky <command>``: the command-line interface.

Commands
--------
surveys    list the survey specifications (or print one as YAML)
simulate   simulate galaxy cutouts or galaxy-cluster fields seen by several surveys
show       colour mosaics (one row per class) of a dataset or a simulation folder
demo       the embedded default end to end: simulate two surveys and write mosaics
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
    p.add_argument("--shard-size", type=int, default=256)
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
                                   field_mpc=a.field_mpc, seed=a.seed, shard_size=a.shard_size, **switches)
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


def _add_demo(sub):
    p = sub.add_parser("demo", help="run the embedded default end to end on this machine")
    p.add_argument("--out", "-o", type=Path, default=Path("labelsky-demo"))
    p.add_argument("--n", type=int, default=400, help="galaxies to simulate")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(a) -> int:
    """Simulate SDSS and DES views of the same galaxies, then write mosaics and a summary."""
    from labelsky.data.display import mosaic
    from labelsky.data.simulate import simulate_galaxies

    t0 = time.time()
    sim = a.out / "simulation"
    datasets = simulate_galaxies(sim, n_objects=a.n, surveys=["sdss", "des"], workers=a.workers,
                                 overwrite=a.overwrite, shard_size=max(16, a.n // 8), reuse=True)
    figures = [str(mosaic(ds, a.out / "figures" / f"mosaic_{name}.png")) for name, ds in datasets.items()]
    summary = {
        "datasets": {name: {"path": str(ds.path), "n": len(ds), "bands": ds.bands,
                            "image_shape": list(ds.image_shape)} for name, ds in datasets.items()},
        "figures": figures,
        "seconds": round(time.time() - t0, 1),
    }
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, d in summary["datasets"].items():
        print(f"{name}: {d['n']} galaxies {d['image_shape']} -> {d['path']}")
    for f in figures:
        print(f"mosaic: {f}")
    print(f"done in {summary['seconds']} s; summary: {a.out / 'summary.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labelsky import __version__

    parser = argparse.ArgumentParser(prog="labelsky", description="labelsky: galaxy morphology, anomaly and cluster-richness catalogs from few labels "
                                                 "and many survey images.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"labelsky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_surveys(sub)
    _add_simulate(sub)
    _add_show(sub)
    _add_demo(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from labelsky.data.io import DatasetError
    from labelsky.data.simulate.runner import SimulationError
    from labelsky.data.surveys import SurveyError

    try:
        return int(args.func(args) or 0)
    except (SurveyError, DatasetError, SimulationError) as err:
        print(f"labelsky: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labelsky: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
