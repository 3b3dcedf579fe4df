"""Paper reproductions on the simulator, and the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path

from labelsky.cli.options import add_out, add_seed, positive_float, positive_int


def add_reproduce(sub):
    from labelsky.reproduce.registry import list_reproductions

    p = sub.add_parser("reproduce", help="reproduce a paper on the simulator")
    p.add_argument("paper", choices=list_reproductions())
    p.add_argument("--experiment", default=None,
                   help="deepastrouda: lsst-y1-y10 (default) | lsst-y10-y1 | sdss-decals | sdss-stripe82")
    add_out(p, "folder of the reproduction (default: runs/<paper>[-<experiment>])", required=False)
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in a couple of minutes")
    p.add_argument("--n", type=positive_int, default=None, help="number of simulated galaxies (owg: clusters)")
    p.add_argument("--backbone", default=None)
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="deepastrouda: initial learning rate")
    p.add_argument("--methods", nargs="+", default=None,
                   help="deepastrouda: variants to train (default source_only dance deepastrouda; also dance_dsbn, "
                        "deepastrouda_no_es, deepastrouda_no_ac, deepastrouda_no_dsbn)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="deepastrouda, etvae: training seeds")
    p.add_argument("--stretch", choices=["fixed", "survey"], default=None,
                   help="deepastrouda: one asinh stretch set by the source survey's noise (fixed, default) or each "
                        "survey's own (survey)")
    p.add_argument("--stamp-size", type=positive_int, default=None,
                   help="deepastrouda, etvae: side of the simulated cutouts in pixels (default 32)")
    p.add_argument("--rounds", type=int, default=None, help="khan2019: recursive-training rounds")
    p.add_argument("--pretrain", choices=["selfsup", "none", "labelled"], default=None,
                   help="khan2019: how the backbone is pretrained (default selfsup: no class label, no DES image)")
    p.add_argument("--allow-labelled-pretraining", action="store_true", default=None,
                   help="khan2019: allow --pretrain labelled, an ablation that shows the backbone the task's labels")
    p.add_argument("--weights", default=None,
                   help="khan2019: start from this backbone weight file (refused if trained with the task's labels)")
    p.add_argument("--workers", type=int, default=None)
    add_seed(p, help="simulation (and khan2019 training) seed")
    p.set_defaults(func=cmd_reproduce)


#: the options of ``labelsky reproduce`` (argparse ``dest``), each reproduction takes some of them
OPTIONS = ("experiment", "n", "backbone", "epochs", "lr", "methods", "seeds", "stretch", "stamp_size", "rounds",
           "pretrain", "allow_labelled_pretraining", "weights", "workers", "seed")


def cmd_reproduce(a) -> int:
    from labelsky.reproduce.registry import get_reproduction

    repro = get_reproduction(a.paper)
    given = {k: getattr(a, k) for k in OPTIONS}
    cfg = repro.config(given, quick=a.quick)
    out = a.out or Path("runs") / repro.default_out(given)
    repro.run(out, cfg)
    print((out / repro.table).read_text())
    print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
    return 0


def add_demo(sub):
    p = sub.add_parser("demo", help="run the embedded default end to end on this machine (a few minutes)")
    add_out(p, "output folder (default: labelsky-demo)", required=False, default=Path("labelsky-demo"))
    p.add_argument("--n", type=positive_int, default=1500, help="galaxies to simulate")
    p.add_argument("--epochs", type=positive_int, default=10, help="classifier epochs per round (default 10)")
    p.add_argument("--pretrain-epochs", type=positive_int, default=4,
                   help="self-supervised pretraining epochs (default 4)")
    p.add_argument("--workers", type=int, default=None)
    add_seed(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(a) -> int:
    """A small Khan et al. 2019 run: SDSS-labelled galaxies, DES target, catalog of the DES galaxies."""
    from labelsky.catalog.writer import write_catalog
    from labelsky.data.display import mosaic
    from labelsky.data.simulate import open_simulation
    from labelsky.methods.predict import Predictor
    from labelsky.reproduce.khan2019 import RECURSION_DIR, KhanConfig, run_khan2019

    t0 = time.time()
    kc = KhanConfig.quick(n_objects=a.n, pretrain_objects=max(160, a.n // 2), epochs=a.epochs,
                          pretrain_epochs=a.pretrain_epochs, top_k=None, workers=a.workers,
                          seed=a.seed)  # pseudo-labels: 5 % of the training set
    res = run_khan2019(a.out, kc)
    datasets = open_simulation(a.out / "sim")
    figures = [str(mosaic(ds, a.out / "figures" / f"mosaic_{name}.png")) for name, ds in datasets.items()]
    des = datasets["des"]
    run = a.out / RECURSION_DIR  # the run of the last recursion round
    catalog = write_catalog(des, a.out / "catalog_des.parquet", Predictor(run), overwrite=True,
                            job={"demo": str(a.out)})
    from labelsky.catalog.browse import build_site

    site = build_site(catalog, des, a.out / "site", overwrite=True, progress=False)["index"]
    table = res["rounds"][0]["table"]
    summary = {
        "datasets": {name: {"path": str(ds.path), "n": len(ds), "bands": ds.bands,
                            "image_shape": list(ds.image_shape)} for name, ds in datasets.items()},
        "accuracy": {k: v["accuracy"] for k, v in table.items()},
        "fo_des_by_round": [r["table"]["FO DES"]["accuracy"] for r in res["rounds"]],
        "run": str(run),
        "catalog": str(catalog),
        "site": site,
        "figures": figures + [str(a.out / "figures" / "tsne.png"), str(a.out / "figures" / "recursion.png")],
        "seconds": round(time.time() - t0, 1),
    }
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print((a.out / "table_ii.md").read_text())
    print(f"catalog of {len(des)} DES galaxies: {catalog}")
    for f in summary["figures"]:
        print(f"figure: {f}")
    print(f"run (the final recursion round's model; labelsky catalog --run {run} ...): {run}")
    print(f"done in {summary['seconds']} s; summary: {a.out / 'summary.json'}")
    print(f"look at the catalog: open {Path(site).resolve().as_uri()} (labelsky browse)")
    return 0
