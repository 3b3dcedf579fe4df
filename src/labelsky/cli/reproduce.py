"""Paper reproductions on the simulator, and the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path

from labelsky.cli.options import add_seed, positive_float, positive_int


def add_reproduce(sub):
    p = sub.add_parser("reproduce", help="reproduce a paper on the simulator")
    p.add_argument("paper", choices=["khan2019", "deepastrouda", "etvae", "owg"])
    p.add_argument("--experiment", default="lsst-y1-y10",
                   help="deepastrouda: lsst-y1-y10 | lsst-y10-y1 | sdss-decals | sdss-stripe82")
    p.add_argument("--out", "-o", type=Path, default=None, help="run folder (default: runs/<paper>[-<experiment>])")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in a couple of minutes")
    p.add_argument("--n", type=positive_int, default=None, help="number of simulated galaxies")
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


def _given(a, **names) -> dict:
    """Config overrides from the options the user gave: ``{config field: value}`` for every option not None."""
    return {field: getattr(a, opt) for field, opt in names.items() if getattr(a, opt) is not None}


def cmd_reproduce(a) -> int:
    if a.paper == "owg":
        from labelsky.reproduce.owg import OWGConfig as cfg_cls
        from labelsky.reproduce.owg import run_owg as run

        cfg = dict(workers=a.workers, seed=a.seed, **_given(a, n_clusters="n", backbone="backbone"))
        out, table = Path("runs") / "owg", "table.md"
    elif a.paper == "etvae":
        from labelsky.reproduce.etvae import ETVAEReproConfig as cfg_cls
        from labelsky.reproduce.etvae import run_etvae as run

        cfg = dict(workers=a.workers, sim_seed=a.seed, **_given(a, n_objects="n", epochs="epochs", seeds="seeds",
                                                                     stamp_size="stamp_size"))
        out, table = Path("runs") / "etvae", "table.md"
    elif a.paper == "deepastrouda":
        from labelsky.reproduce.deepastrouda import ReproConfig as cfg_cls
        from labelsky.reproduce.deepastrouda import run_deepastrouda as run

        cfg = dict(experiment=a.experiment, workers=a.workers, sim_seed=a.seed,
                   **_given(a, n_objects="n", backbone="backbone", epochs="epochs", lr="lr", methods="methods",
                            seeds="seeds", stretch="stretch", stamp_size="stamp_size"))
        out, table = Path("runs") / f"deepastrouda-{a.experiment}", "table.md"
    else:
        from labelsky.reproduce.khan2019 import KhanConfig as cfg_cls
        from labelsky.reproduce.khan2019 import run_khan2019 as run

        cfg = dict(workers=a.workers, seed=a.seed,
                   **_given(a, n_objects="n", backbone="backbone", rounds="rounds", epochs="epochs",
                            pretrain="pretrain", allow_labelled_pretraining="allow_labelled_pretraining",
                            weights="weights"))
        out, table = Path("runs") / a.paper, "table_ii.md"
    out = a.out or out
    run(out, (cfg_cls.quick if a.quick else cfg_cls)(**cfg))
    print((out / table).read_text())
    print(f"results: {out / 'results.json'}; figures: {out / 'figures'}")
    return 0


def add_demo(sub):
    p = sub.add_parser("demo", help="run the embedded default end to end on this machine (a few minutes)")
    p.add_argument("--out", "-o", type=Path, default=Path("labelsky-demo"))
    p.add_argument("--n", type=positive_int, default=1500, help="galaxies to simulate")
    p.add_argument("--workers", type=int, default=None)
    add_seed(p)
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
                          top_k=None, workers=a.workers, seed=a.seed)  # pseudo-labels: 5 % of the training set
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
