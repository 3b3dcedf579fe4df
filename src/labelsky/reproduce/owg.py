"""``labelsky reproduce owg``: optical-wavelength-guided self-supervision (Liang et al.) on simulated clusters.

1. Simulate SDSS-like ugriz fields of 1 physical Mpc around clusters with
   redMaPPer-style richness (:mod:`labelsky.data.simulate.clusters`),
   lambda >= 20 as the redMaPPer SDSS DR8 catalogue the paper draws from.
2. Pretext: ResNet-18 (one input band) learns which band each single-band
   image is, on a cluster-grouped 70/10/20 % split (train / checkpoint
   selection / test); its accuracy on the test clusters, which neither
   training nor the checkpoint choice saw, is compared with a
   gradient-boosting classifier on per-image summary statistics of the raw and
   of the normalised images (how much a trivial statistic explains).
3. Richness: Base (random initialisation, the whole network trained on the
   labels) vs Ours (pretext extractor, then the whole network fine-tuned), the
   same network (Table S2), optimiser, epochs, epoch selection and training
   subsets, cluster-grouped K-fold cross-validation with repeats, per fraction
   of the training folds; MAE, Sigma = std(|y - y_hat|) (the paper's) and the
   scatter std(y - y_hat) of ln(lambda), mean ± std over repeats (Table 1,
   Figure S2). With ``protocols`` including ``frozen``, the same comparison
   with the extractor fixed (only the head trains) as extra rows.
4. Occlusion maps of the pretext classifier over test-cluster images with
   members and stars marked (Figure 2).

Outputs: ``results.json``, ``table.md``, ``figures/richness_vs_fraction.png``,
``figures/occlusion.png``; the pretext run in ``pretext/`` (resumable).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.reproduce.registry import Reproduction
from labelsky.utils import atomic_write_json, atomic_write_text

__all__ = ["OWGConfig", "run_owg", "claims"]

_NAMES = {"base": "Base", "ours": "Ours", "base_frozen": "Base (frozen extractor)",
          "ours_frozen": "Ours (frozen extractor)"}
_METRIC_NAMES = {"mae": "MAE", "sigma": "Sigma", "scatter": "scatter"}


@dataclass
class OWGConfig:
    """Settings of the reproduction. The defaults are a protocol two CPU cores run in about an hour (fine-tuned
    ResNet-18 on 32 px fields, narrower features and head than the paper's); :meth:`paper` gives the paper's
    settings where it states them (a GPU's work)."""

    n_clusters: int = 500
    npix: int = 32
    survey: str = "sdss"
    # the paper's clusters come from the SDSS DR8 redMaPPer catalogue, which lists lambda >= 20, volume-limited to
    # z = 0.33 (the ``owg`` sample of labelsky.data.simulate.samples)
    lambda_range: tuple = (20.0, 150.0)
    z_range: tuple = (0.08, 0.33)
    # resnet10t: trained from random weights on a few hundred clusters, resnet18 never beat predicting the training
    # mean (owg.json at ec4e1f8; resnet10t: docs/selfsup.md); the paper's resnet18 is in :meth:`paper`
    backbone: str = "resnet10t"
    pretext_epochs: int = 15
    pretext_optimizer: str = "adam"  # the paper: SGD, lr 1e-4, momentum 0.9, 100 epochs
    pretext_lr: float = 1e-3
    feature_dim: int = 64  # the paper: 512
    fc_widths: list = field(default_factory=lambda: [256, 64])  # the paper: 1024, 512
    # finetune: Base and Ours train the whole network (the comparison of the paper); frozen: extra rows, the
    # extractor fixed and only the head trained
    protocols: list = field(default_factory=lambda: ["finetune", "frozen"])
    richness_epochs: int = 20
    patience: int | None = 5
    optimizer: str = "adam"  # the paper: SGD, lr 5e-6, momentum 0.9
    lr: float = 1e-3
    batch_size: int = 32
    alpha: float = 1.0
    fractions: list = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4, 0.7, 1.0])
    folds: int = 5
    repeats: int = 2
    seed: int = 0
    workers: int | None = None

    @classmethod
    def quick(cls, **kw) -> "OWGConfig":
        base = dict(n_clusters=40, npix=32, backbone="resnet10t", pretext_epochs=1, feature_dim=32,
                    fc_widths=[32], richness_epochs=3, patience=None, fractions=[0.5, 1.0], folds=2, repeats=1)
        base.update(kw)
        return cls(**base)

    @classmethod
    def paper(cls, **kw) -> "OWGConfig":
        """The paper's settings where it gives them: 512-wide features, FC 1024/512, SGD (pretext lr 1e-4 for
        100 epochs, richness 5e-6), momentum 0.9, 10 folds, 3 repeats, 1-100 % of the labels. It states neither
        the richness epochs, alpha, nor the image size; 64 px here."""
        base = dict(n_clusters=2000, npix=64, backbone="resnet18", pretext_epochs=100, pretext_optimizer="sgd",
                    pretext_lr=1e-4,
                    feature_dim=512, fc_widths=[1024, 512], optimizer="sgd", lr=5e-6, richness_epochs=100,
                    patience=None, fractions=[0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                    folds=10, repeats=3)
        base.update(kw)
        return cls(**base)


def _models(cv: dict) -> list:
    return [k for k in ("base", "ours", "base_frozen", "ours_frozen") if k in cv["summary"]]


def _curve_figure(path: Path, cv: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.measures.figures import save_figure

    fr = [float(q) for q in cv["fractions"]]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("mae", "sigma")):
        for model in _models(cv):
            style = "-" if model.startswith("ours") else "--"
            cells = [cv["summary"][model][str(q)][metric] for q in cv["fractions"]]
            ax.errorbar(np.array(fr) * 100, [c["mean"] for c in cells], yerr=[c["std"] for c in cells], ls=style,
                        marker="o" if model in ("base", "ours") else "x", ms=3, capsize=2,
                        alpha=1.0 if model in ("base", "ours") else 0.5, label=_NAMES[model])
        ax.set_xlabel("training data (%)")
        ax.set_ylabel(f"{_METRIC_NAMES[metric]} of ln(lambda)" + (" = std(|y - y_hat|)" if metric == "sigma" else ""))
        ax.legend(fontsize=7)
    save_figure(fig, path)


_REFERENCE_NAMES = {"constant": "training mean (no learning)", "statistics": "gradient boosting on summaries"}


def table(cv: dict, reference: dict | None = None) -> str:
    """Markdown: MAE, Sigma and scatter (mean ± std over repeats) of every model at every fraction, and of the
    references fitted on the same clusters (``reference["by_fraction"]``) where given."""
    qs = cv["fractions"]
    lines = ["| metric | model | " + " | ".join(f"{100 * float(q):g} %" for q in qs) + " |",
             "|---|---|" + "---|" * len(qs)]
    by_fraction = (reference or {}).get("by_fraction", {})
    for metric in ("mae", "sigma", "scatter"):
        rows = [(_NAMES[m], cv["summary"][m]) for m in _models(cv)]
        rows += [(_REFERENCE_NAMES[k], by_fraction[k]) for k in ("constant", "statistics") if k in by_fraction]
        for name, cells_by_q in rows:
            cells = [cells_by_q[str(q)][metric] for q in qs]
            lines.append(f"| {_METRIC_NAMES[metric]} | {name} | "
                         + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def reference_line(ref: dict) -> str:
    return ("References with all training data, same folds: predicting the training mean MAE "
            f"{ref['constant']['mae']['mean']:.4f}, Sigma {ref['constant']['sigma']['mean']:.4f}, scatter "
            f"{ref['constant']['scatter']['mean']:.4f}; gradient boosting on per-band summary statistics MAE "
            f"{ref['statistics']['mae']['mean']:.4f}, Sigma {ref['statistics']['sigma']['mean']:.4f}, scatter "
            f"{ref['statistics']['scatter']['mean']:.4f}.")


def claims(cv: dict, reference: dict | None = None) -> dict:
    """The paper's claims, computed from the cross-validation, per protocol (``finetune`` first).

    For MAE and Sigma: Ours - Base at every fraction (means over repeats;
    negative = Ours better); whether Ours is below Base at every fraction (by
    the means, and by more than two standard errors of the paired per-fold
    difference); the smallest fraction at which Ours is at or below Base at
    the largest fraction (100 %), or None.

    With ``reference["by_fraction"]``, also ``base_learns``: per fraction, the
    MAE of the training-mean predictor minus Base's (positive = Base learned
    something), and whether Base is below the mean predictor at every fraction
    — the comparison of Ours with Base means something only where it is.
    """
    qs = [str(q) for q in cv["fractions"]]
    s = cv["summary"]
    out = {}
    const = (reference or {}).get("by_fraction", {}).get("constant")
    if const and "base" in s:
        gain = {q: const[q]["mae"]["mean"] - s["base"][q]["mae"]["mean"] for q in qs}
        out["base_learns"] = {"mean_minus_base_mae": gain,
                              "base_below_mean_everywhere": all(g > 0 for g in gain.values())}
    for protocol in cv.get("protocols", ["finetune"]):
        base, ours = ("base", "ours") if protocol == "finetune" else (f"base_{protocol}", f"ours_{protocol}")
        if ours not in s:
            continue
        c = {}
        for metric in ("mae", "sigma"):
            diff = {q: s[ours][q][metric]["mean"] - s[base][q][metric]["mean"] for q in qs}
            c[f"{metric}_ours_minus_base"] = diff
            c[f"{metric}_ours_better_everywhere"] = all(d < 0 for d in diff.values())
            paired = cv.get("paired", {}).get(protocol)
            if paired:
                c[f"{metric}_paired_sem"] = {q: paired[q][metric]["sem"] for q in qs}
                c[f"{metric}_ours_better_everywhere_by_2_sem"] = all(
                    paired[q][metric]["mean"] + 2 * paired[q][metric]["sem"] < 0 for q in qs)
            base_full = s[base][qs[-1]][metric]["mean"]
            reach = [float(q) for q in qs if s[ours][q][metric]["mean"] <= base_full]
            c[f"{metric}_smallest_fraction_ours_matches_base_at_100"] = min(reach) if reach else None
        out[protocol] = c
    return out


def claims_text(cl: dict) -> str:
    """The claims of :func:`claims` as markdown lines."""
    lines = []
    learns = cl.get("base_learns")
    if learns:
        lines.append("**Does Base learn?** MAE of the training-mean predictor minus Base's (positive = Base learned): "
                     + ", ".join(f"{100 * float(q):g} %: {v:+.4f}" for q, v in learns["mean_minus_base_mae"].items())
                     + f". Base below the mean predictor at every fraction: {learns['base_below_mean_everywhere']}.")
        lines.append("")
    for protocol, c in cl.items():
        if protocol == "base_learns":
            continue
        head = "Fine-tuned (Base trained from scratch vs Ours pretrained)" if protocol == "finetune" else \
            f"{protocol.capitalize()} extractor (extra)"
        lines.append(f"**{head}.** Ours - Base (negative = Ours better): MAE " + ", ".join(
            f"{100 * float(q):g} %: {v:+.4f}" for q, v in c["mae_ours_minus_base"].items())
                     + "; Sigma " + ", ".join(f"{100 * float(q):g} %: {v:+.4f}"
                                              for q, v in c["sigma_ours_minus_base"].items()) + ".")
        sem = ""
        if "mae_ours_better_everywhere_by_2_sem" in c:
            sem = (f" (by more than 2 standard errors of the paired per-fold difference: MAE "
                   f"{c['mae_ours_better_everywhere_by_2_sem']}, Sigma {c['sigma_ours_better_everywhere_by_2_sem']})")
        lines.append(f"Ours below Base at every fraction: MAE {c['mae_ours_better_everywhere']}, Sigma "
                     f"{c['sigma_ours_better_everywhere']}{sem}. Smallest fraction at which Ours matches Base at "
                     f"100 %: MAE {c['mae_smallest_fraction_ours_matches_base_at_100']}, Sigma "
                     f"{c['sigma_smallest_fraction_ours_matches_base_at_100']}.")
        lines.append("")
    return "\n".join(lines).strip()


def _n_groups(ds, rows) -> int:
    """Distinct galaxy clusters among ``rows`` (a cluster may have several rows)."""
    from labelsky.methods.selfsup.pretext import split_groups

    return int(len(np.unique(np.asarray(split_groups(ds)).astype(str)[np.asarray(rows)])))


def run_owg(out: str | Path, rc: OWGConfig | None = None, progress: bool = True) -> dict:
    from labelsky.data.simulate import simulate_clusters
    from labelsky.data.simulate.clusters import source_pixels
    from labelsky.data.transforms import Preprocess
    from labelsky.methods.selfsup import pretext as pretext_method
    from labelsky.methods.selfsup.pretext import PretextConfig, pretext_accuracy, statistics_baseline
    from labelsky.methods.selfsup.richness import RichnessConfig, cross_validate, reference_predictions
    from labelsky.reproduce.occlusion import occlusion_figure, occlusion_map

    rc = rc or OWGConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ds = simulate_clusters(out / "sim", n_clusters=rc.n_clusters, npix=rc.npix, surveys=[rc.survey], seed=rc.seed,
                           lambda_range=tuple(rc.lambda_range), z_range=tuple(rc.z_range), workers=rc.workers,
                           progress=progress,
                           reuse=True)[rc.survey]
    timings = {"simulate_s": round(time.time() - t0, 1)}
    pcfg = PretextConfig(task="bands", backbone=rc.backbone, feature_dim=rc.feature_dim, optimizer=rc.pretext_optimizer,
                         lr=rc.pretext_lr, max_epochs=rc.pretext_epochs, patience=rc.pretext_epochs, seed=rc.seed)
    split = pretext_method.select_rows({"data": [ds]}, pcfg)  # whole clusters: 70 % train, 10 % val, 20 % test
    tr, va, te = (split[k][0].rows for k in ("train", "val", "test"))
    t1 = time.time()
    pretext = pretext_method.fit(out / "pretext", split, pcfg, progress=progress).model
    timings["pretext_s"] = round(time.time() - t1, 1)
    pre = Preprocess([0], noise=[1.0], stretch=pcfg.stretch, softening=pcfg.softening)
    test_acc = pretext_accuracy(pretext, ds, te, pcfg)
    pretext_res = {"cnn_test_accuracy": test_acc["accuracy"], "per_band_test_accuracy": test_acc["per_class"],
                   "cnn_val_accuracy": pretext_accuracy(pretext, ds, va, pcfg)["accuracy"],
                   "n_test_images": test_acc["n_images"], "n_train_clusters": _n_groups(ds, tr),
                   "n_val_clusters": _n_groups(ds, va), "n_test_clusters": _n_groups(ds, te),
                   "chance": test_acc["chance"],
                   "stats_raw_accuracy": statistics_baseline(ds, tr, te, seed=rc.seed),
                   "stats_normalised_accuracy": statistics_baseline(ds, tr, te, pre, seed=rc.seed)}
    t2 = time.time()
    cfg = RichnessConfig(backbone=rc.backbone, feature_dim=rc.feature_dim, fc_widths=list(rc.fc_widths),
                         alpha=rc.alpha, max_epochs=rc.richness_epochs, patience=rc.patience, optimizer=rc.optimizer,
                         lr=rc.lr, batch_size=rc.batch_size, seed=rc.seed)
    cv = cross_validate(ds, cfg, fractions=tuple(rc.fractions), folds=rc.folds, repeats=rc.repeats,
                        pretrained=pretext.net.extractor.state_dict(), progress=progress, protocols=rc.protocols)
    timings["richness_cv_s"] = round(time.time() - t2, 1)
    reference = reference_predictions(ds, folds=rc.folds, repeats=rc.repeats, seed=rc.seed,
                                      fractions=rc.fractions, val_fraction=cfg.val_fraction)
    _curve_figure(out / "figures" / "richness_vs_fraction.png", cv)
    sim_cfg = json.loads((ds.path.parent / "simulation.json").read_text())["config"]
    panels = []
    r_band = ds.bands.index("r") if "r" in ds.bands else 0
    for row in te[:2]:
        x = pre(ds.image(int(row))[[r_band]])
        m = occlusion_map(pretext, x, target=r_band, patch=max(4, rc.npix // 8), stride=max(2, rc.npix // 32))
        src = source_pixels(sim_cfg, int(row), rc.survey)
        panels.append({"image": x[0].numpy(), "map": m, "title": f"{ds.column('id_str')[row]} (r band)",
                       "members": (src["x"][src["kind"] == "member"], src["y"][src["kind"] == "member"]),
                       "stars": (src["x"][src["kind"] == "star"], src["y"][src["kind"] == "star"])})
    occlusion_figure(panels, out / "figures" / "occlusion.png", patch=max(4, rc.npix // 8),
                     stride=max(2, rc.npix // 32))
    cl = claims(cv, reference)
    results = {"config": dataclasses.asdict(rc), "pretext": pretext_res, "richness": cv, "claims": cl,
               "reference": reference,
               "timings": {**timings, "total_s": round(time.time() - t0, 1)}}
    atomic_write_text(out / "table.md", f"Richness (ln lambda) on {cv['n_clusters']} simulated clusters, "
                                        f"{rc.folds}-fold grouped CV x {rc.repeats} repeats, mean ± std; "
                                        "Sigma = std(|y - y_hat|), scatter = std(y - y_hat)\n\n"
                      + table(cv, reference) + "\n\n" + reference_line(reference) + "\n\n" + claims_text(cl)
                      + "\n\nPretext (band identity) accuracy on the test clusters: "
                      f"CNN {pretext_res['cnn_test_accuracy']:.3f}; summary statistics raw "
                      f"{pretext_res['stats_raw_accuracy']:.3f}, normalised "
                      f"{pretext_res['stats_normalised_accuracy']:.3f}"
                      f"; chance {pretext_res['chance']:.3f}\n")
    atomic_write_json(out / "results.json", results)
    return results


REPRODUCTION = Reproduction(
    name="owg", config_cls=OWGConfig, run=run_owg, table="table.md",
    options={"n": "n_clusters", "backbone": "backbone", "workers": "workers", "seed": "seed"},
    description="Liang et al.: band pretext, richness Base vs Ours at 1-100 % of the labels (Table 1)")
