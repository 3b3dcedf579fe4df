"""``labelsky reproduce khan2019``: Khan et al. 2019 on the simulator.

1. Simulate spiral and elliptical galaxies seen by SDSS and DES. A fraction
   ``overlap`` is seen by both (the SDSS∩DES overlap, where the test sets
   live); the rest by SDSS alone (labelled training pool) or DES alone (the
   unlabelled DES galaxies).
2. Pretrain a backbone: ImageNet weights cannot be fetched here, so the
   backbone is first trained on *other* simulated images: DECaLS cutouts of
   all eight classes (another survey, other labels). The run folder records
   which weights were used (``weights_used`` in ``source/config.json``).
3. Train the classifier on SDSS training galaxies whose Galaxy Zoo vote
   fraction passes the HP thresholds, with progressive unfreezing.
4. Evaluate on the HP and FO test sets in SDSS and for the same galaxies in
   DES: accuracy, F1, confusion matrices, accuracy of the most confident 50 %
   (the paper's Table II), and the confidence curve.
5. Embed the unlabelled DES galaxies (penultimate layer), t-SNE, k-means with
   one cluster per class, clusters matched one-to-one to classes from the
   classifier's probabilities (Hungarian), cluster purity; figure.
6. Recursive training: top-K per class agreeing with their cluster are added
   with pseudo-labels; retrain from the same pretrained weights; FO DES
   accuracy per round (the paper's Figure 5).

Labels: the HP selection uses vote fractions as the paper does; accuracies are
measured against the simulation's true classes (the paper could only use
Galaxy Zoo labels).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.errors import RunFolderError
from labelsky.data.simulate import simulate_galaxies
from labelsky.evaluate.embeddings import cluster, cluster_purity, name_clusters, tsne
from labelsky.evaluate.metrics import classification_report, confident_accuracy_curve, hp_fo_sets
from labelsky.methods.transfer import train_classifier
from labelsky.methods.transfer.pseudolabel import select_pseudo_labels
from labelsky.methods.transfer import TransferConfig
from labelsky.training import predict
from labelsky.utils import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["KhanConfig", "run_khan2019", "pretrain_backbone"]

CLASSES = ["elliptical", "spiral"]
ANSWERS = {"elliptical": "smooth", "spiral": "featured"}


@dataclass
class KhanConfig:
    n_objects: int = 6000
    overlap: float = 0.5
    pretrain_objects: int = 3000
    pretrain_epochs: int = 8
    backbone: str = "resnet18"  # the paper used xception41; resnet18 is ~8x faster on a CPU (--backbone to change)
    bands: list = field(default_factory=lambda: ["g", "r", "z"])
    epochs: int = 14
    head_epochs: int = 2
    unfreeze_every: int = 1
    batch_size: int = 64
    hp_thresholds: dict = field(default_factory=lambda: {"elliptical": 0.8, "spiral": 0.8})
    rounds: int = 1
    top_k: int = 500
    seed: int = 0
    workers: int | None = None
    mag_range: tuple = (15.0, 18.5)

    @classmethod
    def quick(cls, **kw) -> "KhanConfig":
        base = dict(n_objects=240, pretrain_objects=160, pretrain_epochs=1, epochs=2, head_epochs=1,
                    top_k=20, batch_size=32)
        base.update(kw)
        return cls(**base)


def _transfer_cfg(kc: KhanConfig, weights, **over) -> TransferConfig:
    base = dict(backbone=kc.backbone, weights=weights, bands=list(kc.bands), max_epochs=kc.epochs,
                head_epochs=kc.head_epochs, unfreeze_every=kc.unfreeze_every, batch_size=kc.batch_size,
                seed=kc.seed, patience=4)
    base.update(over)
    return TransferConfig(**base)


def pretrain_backbone(out_dir: Path, kc: KhanConfig, progress: bool = True) -> Path:
    """Pretrain ``kc.backbone`` on simulated DECaLS cutouts of all classes; returns the weight file."""
    from safetensors.torch import save_file

    weight_file = out_dir / "backbone.safetensors"
    wanted = {"backbone": kc.backbone, "objects": kc.pretrain_objects, "epochs": kc.pretrain_epochs,
              "seed": kc.seed, "bands": list(kc.bands)}
    if weight_file.exists():
        try:
            made = json.loads((out_dir / "backbone.json").read_text())
        except (OSError, ValueError):
            made = {}
        if all(made.get(k) == v for k, v in wanted.items()):
            return weight_file
        raise RunFolderError(f"{weight_file} was pretrained with other settings ({made}); remove {out_dir} to redo it")
    sims = simulate_galaxies(out_dir / "sim", n_objects=kc.pretrain_objects, surveys=["decals"],
                             seed=kc.seed + 1000, workers=kc.workers, progress=progress, reuse=True,
                             mag_range=tuple(kc.mag_range), shard_size=max(32, kc.pretrain_objects // 8))
    ds = sims["decals"]
    split = ds.column("split")
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    cfg = _transfer_cfg(kc, None, max_epochs=kc.pretrain_epochs, head_epochs=0, unfreeze_groups=100,
                        hidden=[256], dropout=0.3, backbone_lr_factor=1.0)
    model = train_classifier(out_dir / "run", [(ds, tr, None)], [(ds, va, None)], ds.classes, cfg,
                             progress=progress)
    atomic_write_json(out_dir / "backbone.json", {**wanted, "trained_on": str(ds.path), "classes": ds.classes})
    with atomic_path(weight_file) as tmp:
        save_file({k: v.contiguous() for k, v in model.model.backbone.state_dict().items()}, str(tmp))
    return weight_file


def _eval_sets(model, cfg, sdss, des, sets, train_rows, train_labels) -> dict:
    rows = {}
    p_tr = predict(model, sdss, train_rows, cfg, embed=False)["probs"]
    rows["Training set"] = (p_tr, train_labels)
    for name, src_key, ds in (("HP SDSS", "hp_source", sdss), ("HP DES", "hp_target", des),
                              ("FO SDSS", "fo_source", sdss), ("FO DES", "fo_target", des)):
        idx = sets[src_key]
        p = predict(model, ds, idx, cfg, embed=False)["probs"]
        rows[name] = (p, ds.column("label")[idx])
    table = {}
    for name, (p, y) in rows.items():
        rep = classification_report(y, p.argmax(1), len(CLASSES), CLASSES)
        curve = confident_accuracy_curve(p, y, [0.5, 1.0])
        table[name] = {"n": rep["n"], "accuracy": rep["accuracy"], "f1": rep["f1"],
                       "top50_accuracy": curve["accuracy"][0], "confusion_matrix": rep["confusion_matrix"],
                       "curve": confident_accuracy_curve(p, y)}
    return table


def _table_md(table: dict, title: str) -> str:
    lines = [f"### {title}", "", "| dataset | n | accuracy | F1 | accuracy of top 50 % confident |",
             "|---|---|---|---|---|"]
    for name, r in table.items():
        lines.append(f"| {name} | {r['n']} | {100 * r['accuracy']:.2f} % | {r['f1']:.4f} | "
                     f"{100 * r['top50_accuracy']:.2f} % |")
    return "\n".join(lines) + "\n"


def _tsne_figure(path: Path, panels: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, xy, lab) in zip(axes[0], panels):
        for k, name in enumerate(CLASSES):
            m = lab == k
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, label=name, color=["tab:red", "tab:blue"][k])
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _recursion_figure(path: Path, rounds: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for r, res in enumerate(rounds):
        for ax, name in zip(axes, ("FO SDSS", "FO DES")):
            c = res["table"][name]["curve"]
            ax.plot(np.array(c["fraction"]) * 100, np.array(c["accuracy"]) * 100, marker="o", ms=3,
                    label=f"recursion {r}")
            ax.set_title(f"{name} test set", fontsize=9)
            ax.set_xlabel("most confident fraction (%)")
            ax.set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_khan2019(out: str | Path, kc: KhanConfig | None = None, progress: bool = True) -> dict:
    """Run the whole reproduction into ``out``; returns the results dict (also ``out/results.json``)."""
    kc = kc or KhanConfig()
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings = {}
    sims = simulate_galaxies(out / "sim", n_objects=kc.n_objects, surveys=["sdss", "des"],
                             classes={c: 1.0 for c in CLASSES}, overlap=kc.overlap, seed=kc.seed,
                             workers=kc.workers, progress=progress, reuse=True, mag_range=tuple(kc.mag_range),
                             shard_size=max(32, kc.n_objects // 16))
    sdss, des = sims["sdss"], sims["des"]
    timings["simulate_s"] = time.time() - t0

    t = time.time()
    weights = pretrain_backbone(out / "pretrain", kc, progress)
    timings["pretrain_s"] = time.time() - t

    # data: SDSS training pool (split train) with HP vote selection; test sets in the overlap (split test)
    split = sdss.column("split")
    in_both = np.array([s == "sdss,des" for s in sdss.column("in_surveys")])
    sets = hp_fo_sets(sdss, des, np.flatnonzero((split == "test") & in_both), ANSWERS, kc.hp_thresholds,
                      balance=True)
    pool = hp_fo_sets(sdss, sdss, np.flatnonzero(split == "train"), ANSWERS, kc.hp_thresholds, balance=True)
    train_rows, train_labels = pool["hp_source"], pool["hp_labels"]  # vote labels, as the paper
    valp = hp_fo_sets(sdss, sdss, np.flatnonzero(split == "val"), ANSWERS, kc.hp_thresholds, balance=True)
    val_rows, val_labels = valp["hp_source"], valp["hp_labels"]
    des_only = np.flatnonzero(np.array([s == "des" for s in des.column("in_surveys")]))

    results = {"config": dataclasses.asdict(kc), "weights": str(weights), "rounds": [],
               "sizes": {"train": int(len(train_rows)), "val": int(len(val_rows)),
                         "hp_test": int(len(sets["hp_source"])), "fo_test": int(len(sets["fo_source"])),
                         "unlabelled_des": int(len(des_only)),
                         "train_per_class": np.bincount(train_labels, minlength=2).tolist(),
                         "train_label_agreement_with_truth":
                             float((train_labels == sdss.column("label")[train_rows]).mean())
                             if len(train_rows) else float("nan")}}
    extra_parts: list = []
    for r in range(kc.rounds + 1):
        t = time.time()
        cfg = _transfer_cfg(kc, str(weights))
        parts = [(sdss, train_rows, train_labels)] + extra_parts
        model = train_classifier(out / f"round{r}", parts, [(sdss, val_rows, val_labels)], CLASSES, cfg,
                                 progress=progress)
        table = _eval_sets(model, cfg, sdss, des, sets, train_rows, train_labels)
        # embeddings of unlabelled DES galaxies, t-SNE, clusters
        pu = predict(model, des, des_only, cfg)
        xy = tsne(pu["embedding"], dim=2, seed=kc.seed) if len(des_only) > 5 else np.zeros((len(des_only), 2))
        cid = cluster(xy, len(CLASSES), seed=kc.seed) if len(des_only) >= len(CLASSES) else np.zeros(len(des_only),
                                                                                                     int)
        cclass = name_clusters(cid, pu["probs"], len(CLASSES), one_to_one=True)[cid] if len(cid) else cid
        truth_u = des.column("label")[des_only]
        round_res = {"round": r, "table": table, "seconds": time.time() - t,
                     "unlabelled": {"n": int(len(des_only)), "cluster_purity": cluster_purity(cid, truth_u),
                                    "cluster_label_accuracy": float((cclass == truth_u).mean()) if len(cid) else
                                    float("nan"),
                                    "prediction_accuracy": float((pu["probs"].argmax(1) == truth_u).mean())
                                    if len(cid) else float("nan")},
                     "weights_used": model.weights_info.get("weights")}
        if r == 0:
            hp_s = predict(model, sdss, sets["hp_source"], cfg)
            hp_d = predict(model, des, sets["hp_target"], cfg)
            panels = [("HP SDSS (truth)", tsne(hp_s["embedding"], seed=kc.seed), sets["hp_labels"]),
                      ("HP DES (truth)", tsne(hp_d["embedding"], seed=kc.seed), sets["hp_labels"]),
                      ("unlabelled DES (cluster class)", xy, cclass)] if len(sets["hp_source"]) > 5 else \
                [("unlabelled DES (cluster class)", xy, cclass)]
            _tsne_figure(out / "figures" / "tsne.png", panels)
        if r < kc.rounds:
            rows, labels = select_pseudo_labels(pu["probs"], cclass, kc.top_k)
            round_res["pseudo_labels"] = {"n": int(len(rows)), "per_class": np.bincount(labels, minlength=2).tolist(),
                                          "accuracy": float((labels == truth_u[rows]).mean()) if len(rows)
                                          else float("nan")}
            extra_parts = [(des, des_only[rows], labels)]
        results["rounds"].append(round_res)
        atomic_write_json(out / "results.json", results)
    timings["total_s"] = time.time() - t0
    results["timings"] = timings
    _recursion_figure(out / "figures" / "recursion.png", results["rounds"])
    md = _table_md(results["rounds"][0]["table"], "Table II (recursion 0)")
    if kc.rounds:
        md += "\n" + _table_md(results["rounds"][-1]["table"], f"After {kc.rounds} recursion(s)")
    md += "\n### Recursive training: FO DES\n\n| round | accuracy | top 50 % accuracy | pseudo-labels added |\n"
    md += "|---|---|---|---|\n"
    for rr in results["rounds"]:
        fo = rr["table"]["FO DES"]
        pl = rr.get("pseudo_labels", {}).get("n", "")
        md += f"| {rr['round']} | {100 * fo['accuracy']:.2f} % | {100 * fo['top50_accuracy']:.2f} % | {pl} |\n"
    u = results["rounds"][0]["unlabelled"]
    md += (f"\nUnlabelled DES galaxies: {u['n']}, t-SNE + k-means cluster purity {u['cluster_purity']:.3f}, "
           f"cluster-label accuracy {u['cluster_label_accuracy']:.3f}.\n")
    atomic_write_text(out / "table_ii.md", md)
    atomic_write_json(out / "results.json", results)
    return results
