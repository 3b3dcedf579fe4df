"""Commands that use a trained run or its catalog: evaluate, catalog, browse."""

from __future__ import annotations

import sys
from pathlib import Path

from labelsky.cli.options import add_device, add_out, add_overwrite, positive_int


def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="metrics of a trained run on a dataset split (classes: accuracy, F1, "
                       "confusion; votes: RMSE; regressions: MAE, Sigma), and its domain gap")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test", help="split to evaluate, or 'all' (with --reference: the rows of "
                   "--data whose domain gap is measured, labelled or not; several joined by +)")
    p.add_argument("--reference", type=Path, default=None, help="also print the domain gap between this dataset "
                   "(e.g. the training survey) and --data in the model's embedding; needs no label")
    p.add_argument("--reference-split", default="val+test", help="rows of --reference for the domain gap: a split, "
                   "several joined by + (default val+test: rows the model did not train on), or all")
    add_device(p, workers=False)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.evaluate.report import evaluate_run, headline, scored_rows, scored_what
    from labelsky.methods.run import load_run

    ds = open_dataset(a.data)
    _warn_inputs(a.run, ds)
    model = load_run(a.run)
    scored = len(scored_rows(model, ds, a.split)) > 0
    if a.reference is None or scored:
        rep = evaluate_run(a.run, ds, split=a.split, device=a.device, model=model)
        print(f"{rep['survey']} {a.split}: {headline(rep)}" + (f" -> {rep['path']}" if rep["path"] else ""))
        if rep.get("write_error"):
            print(f"labelsky: warning: {rep['write_error']}", file=sys.stderr)
    else:
        print(f"{ds.path} has no {scored_what(model)} in split {a.split!r}: no score, only the domain gap")
    if a.reference is not None:
        from labelsky.evaluate.gap import run_domain_gap
        from labelsky.measures.domain_gap import gap_line

        gap = run_domain_gap(a.run, ds, open_dataset(a.reference), split=a.split,
                             reference_split=a.reference_split, device=a.device)
        print(f"domain gap {a.reference} ({a.reference_split}) -> {a.data} ({a.split}): {gap_line(gap)}; "
              f"{a.run / ('domain_gap_' + Path(ds.path).name + '.json')}, figures: {a.run / 'figures'}")
    return 0


def _warn_inputs(run, ds) -> None:
    from labelsky.methods.run import input_warnings

    for w in input_warnings(run, ds):
        print(f"labelsky: warning: {w}", file=sys.stderr)


def _job_identity(run: Path, pre) -> dict:
    """What makes a catalog: the exact checkpoint file and the preprocessing (parts of two never mix)."""
    from labelsky.methods.run import run_checkpoint

    ckpt = run_checkpoint(run)
    st = ckpt.stat()
    return {"run": str(run.resolve()), "checkpoint": str(ckpt.resolve()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "preprocess": pre.describe()}


def add_catalog(sub):
    p = sub.add_parser("catalog", help="run a trained model over a dataset into a catalog")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    add_out(p, "catalog: FILE.parquet (one file), FILE.fits, or a folder (Parquet part per shard + _metadata, for "
               "very large catalogs)")
    p.add_argument("--format", choices=["parquet", "fits", "partitioned"], default=None,
                   help="default: from --out (.parquet, .fits, else partitioned)")
    p.add_argument("--embedding", action="store_true", help="add the penultimate-layer vector")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto", help="local engine: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: one process, I/O overlapped with compute; ray: Ray Data actor pool")
    p.add_argument("--address", default=None, help="ray: cluster address (default: start a local Ray)")
    p.add_argument("--ray-workers", type=int, default=None, help="ray: actors (default: fill the cluster)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs per actor (e.g. 1, or 0.5)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs (and torch threads) per actor")
    p.add_argument("--domain", choices=["source", "target"], default="target",
                   help="adapted models: whose batch-norm statistics to use (default: target)")
    add_overwrite(p)
    p.set_defaults(func=cmd_catalog)


def cmd_catalog(a) -> int:
    from labelsky.catalog.local import LocalEngine
    from labelsky.catalog.ray_engine import RayEngine
    from labelsky.catalog.writer import write_catalog
    from labelsky.data.io import open_dataset
    from labelsky.methods.predict import Predictor

    ds = open_dataset(a.data)
    _warn_inputs(a.run, ds)
    if a.engine == "ray":
        engine = RayEngine(address=a.address, workers=a.ray_workers, gpus_per_worker=a.gpus_per_worker,
                           cpus_per_worker=a.cpus_per_worker)
        device = engine.device
    else:
        engine, device = LocalEngine(), a.device
    predictor = Predictor(a.run, device=device, domain=a.domain, channels_last=True)
    pre = predictor.preprocess(ds)
    out = write_catalog(ds, a.out, predictor, transform=pre, batch_size=a.batch_size, embedding=a.embedding,
                        fmt=a.format, job=_job_identity(a.run, pre), engine=engine, overwrite=a.overwrite)
    print(f"{len(ds)} rows -> {out}")
    return 0


def add_browse(sub):
    p = sub.add_parser("browse", help="a static web site of a catalog: class mosaics by confidence, the least "
                       "certain, the unknown-flagged, vote-tree answers, a page per galaxy (opens from file://)")
    p.add_argument("catalog", type=Path, help="a Parquet catalog (file or folder) written by labelsky catalog")
    p.add_argument("--data", required=True, type=Path, help="the dataset the catalog was made from (its images)")
    add_out(p, "the site's folder (open OUT/index.html)")
    p.add_argument("--rendering", default="auto", help="how flux images become pictures: auto (the survey's "
                   "viewer), legacysurvey, sdss, hsc, lupton, desi (8-bit picture datasets are shown as stored)")
    p.add_argument("--per-page", type=positive_int, default=120, help="tiles per listing page (default 120)")
    p.add_argument("--n-uncertain", type=int, default=600, help="galaxies in the least-certain listing (default 600)")
    p.add_argument("--per-answer", type=positive_int, default=12, help="galaxies per vote-tree answer (default 12)")
    p.add_argument("--no-galaxy-pages", dest="galaxy_pages", action="store_false",
                   help="no page per galaxy (listings only)")
    add_overwrite(p)
    p.set_defaults(func=cmd_browse)


def cmd_browse(a) -> int:
    from labelsky.catalog.browse import BrowseSettings, build_site

    st = BrowseSettings(per_page=a.per_page, n_uncertain=max(0, a.n_uncertain), per_answer=a.per_answer,
                        rendering=a.rendering, galaxy_pages=a.galaxy_pages)
    res = build_site(a.catalog, a.data, a.out, settings=st, overwrite=a.overwrite)
    print(f"{res['n']} galaxies, {res['thumbnails_written']} thumbnails written, {res['files']} files; open "
          f"{Path(res['index']).resolve().as_uri()}")
    return 0
