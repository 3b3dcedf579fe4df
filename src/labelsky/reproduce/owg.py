"""``labelsky reproduce owg``: optical-wavelength-guided self-supervision (Liang et al.) on simulated clusters.

1. Simulate SDSS-like ugriz fields of 1 physical Mpc around clusters with
   redMaPPer-style richness (:mod:`labelsky.data.simulate.clusters`),
   lambda >= 20 as the redMaPPer SDSS DR8 catalogue the paper draws from.
2. Pretext: ResNet-18 (one input band) learns which band each single-band
   image is, on a cluster-grouped 4:1 split; its test accuracy is compared
   with a gradient-boosting classifier on per-image summary statistics of the
   raw and of the normalised images (how much a trivial statistic explains).
3. Richness: Base (random initialisation) vs Ours (pretext extractor), the
   same network (Table S2) and the same training subsets, cluster-grouped
   K-fold cross-validation with repeats, per fraction of the training folds;
   MAE and Sigma of ln(lambda), mean ± std over repeats (Table 1, Figure S2).
4. Occlusion maps of the pretext classifier over cluster images with members
   and stars marked (Figure 2).

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

from labelsky.utils import atomic_write_json, atomic_write_text

__all__ = ["OWGConfig", "run_owg"]


@dataclass
class OWGConfig:
    n_clusters: int = 600
    npix: int = 64
    survey: str = "sdss"
    # the paper's clusters come from the SDSS DR8 redMaPPer catalogue, which lists lambda >= 20
    lambda_range: tuple = (20.0, 150.0)
    backbone: str = "resnet18"
    pretext_epochs: int = 8
    feature_dim: int = 512
    fc_widths: list = field(default_factory=lambda: [1024, 512])
    freeze_extractor: bool = True
    richness_epochs: int = 40
    alpha: float = 1.0
    fractions: list = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    folds: int = 10
    repeats: int = 3
    seed: int = 0
    workers: int | None = None

    @classmethod
    def quick(cls, **kw) -> "OWGConfig":
        base = dict(n_clusters=40, npix=32, backbone="resnet10t", pretext_epochs=1, feature_dim=32,
                    fc_widths=[32], richness_epochs=3, fractions=[0.5, 1.0], folds=2, repeats=1)
        base.update(kw)
        return cls(**base)


def _curve_figure(path: Path, cv: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.evaluate.figures import save_figure

    fr = [float(q) for q in cv["fractions"]]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("mae", "sigma")):
        for model, style in (("base", "--"), ("ours", "-")):
            cells = [cv["summary"][model][str(q)][metric] for q in cv["fractions"]]
            ax.errorbar(np.array(fr) * 100, [c["mean"] for c in cells], yerr=[c["std"] for c in cells], ls=style,
                        marker="o", ms=3, capsize=2, label="Base" if model == "base" else "Ours (pretext)")
        ax.set_xlabel("training data (%)"), ax.set_ylabel(f"{'MAE' if metric == 'mae' else 'Sigma'} of ln(lambda)")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def _table(cv: dict) -> str:
    qs = cv["fractions"]
    lines = ["| metric | model | " + " | ".join(f"{100 * float(q):g} %" for q in qs) + " |",
             "|---|---|" + "---|" * len(qs)]
    for metric in ("mae", "sigma"):
        for model in ("base", "ours"):
            cells = [cv["summary"][model][str(q)][metric] for q in qs]
            lines.append(f"| {'MAE' if metric == 'mae' else 'Sigma'} | {'Base' if model == 'base' else 'Ours'} | "
                         + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def _reference_line(ref: dict) -> str:
    return ("References with all training data, same folds: predicting the training mean MAE "
            f"{ref['constant']['mae']['mean']:.4f}, Sigma {ref['constant']['sigma']['mean']:.4f}; gradient "
            f"boosting on per-band summary statistics MAE {ref['statistics']['mae']['mean']:.4f}, Sigma "
            f"{ref['statistics']['sigma']['mean']:.4f}.")


def _claims(cv: dict) -> dict:
    qs = [str(q) for q in cv["fractions"]]
    s = cv["summary"]
    out = {}
    for metric in ("mae", "sigma"):
        diff = {q: s["ours"][q][metric]["mean"] - s["base"][q][metric]["mean"] for q in qs}
        out[f"{metric}_ours_minus_base"] = diff
        out[f"{metric}_ours_better_everywhere"] = all(d < 0 for d in diff.values())
        base_full = s["base"][qs[-1]][metric]["mean"]
        reach = [float(q) for q in qs if s["ours"][q][metric]["mean"] <= base_full]
        out[f"{metric}_smallest_fraction_ours_matches_base_at_100"] = min(reach) if reach else None
    return out


def run_owg(out: str | Path, rc: OWGConfig | None = None, progress: bool = True) -> dict:
    import torch

    from labelsky.data.simulate import simulate_clusters
    from labelsky.data.simulate.clusters import source_pixels
    from labelsky.data.transforms import Preprocess
    from labelsky.evaluate.occlusion import occlusion_figure, occlusion_map
    from labelsky.methods.selfsup.pretext import PretextConfig, fit_pretext, statistics_baseline
    from labelsky.methods.selfsup.pretext import select_rows as pretext_rows
    from labelsky.methods.selfsup.richness import RichnessConfig, cross_validate, reference_predictions

    rc = rc or OWGConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ds = simulate_clusters(out / "sim", n_clusters=rc.n_clusters, npix=rc.npix, surveys=[rc.survey], seed=rc.seed,
                           lambda_range=tuple(rc.lambda_range), workers=rc.workers, progress=progress,
                           reuse=True)[rc.survey]
    timings = {"simulate_s": round(time.time() - t0, 1)}
    split = pretext_rows([ds], seed=rc.seed)  # pretext split 4:1, whole clusters
    tr, te = split["train"][1], split["val"][1]
    t1 = time.time()
    pcfg = PretextConfig(task="bands", backbone=rc.backbone, feature_dim=rc.feature_dim,
                         max_epochs=rc.pretext_epochs, seed=rc.seed)
    pretext = fit_pretext(out / "pretext", ds, tr, te, pcfg, progress=progress)
    timings["pretext_s"] = round(time.time() - t1, 1)
    pre = Preprocess([0], noise=[1.0], stretch=pcfg.stretch, softening=pcfg.softening)
    with torch.inference_mode():
        correct, n = 0, 0
        for r in te:
            x = torch.stack([pre(ds.image(int(r))[[b]]) for b in range(len(ds.bands))])
            correct += int((pretext(x).argmax(1) == torch.arange(len(ds.bands))).sum())
            n += len(ds.bands)
    pretext_res = {"cnn_test_accuracy": correct / n, "n_test_images": n, "chance": 1 / len(ds.bands),
                   "stats_raw_accuracy": statistics_baseline(ds, tr, te, seed=rc.seed),
                   "stats_normalised_accuracy": statistics_baseline(ds, tr, te, pre, seed=rc.seed)}
    t2 = time.time()
    cfg = RichnessConfig(backbone=rc.backbone, feature_dim=rc.feature_dim, fc_widths=list(rc.fc_widths),
                         alpha=rc.alpha, freeze_extractor=rc.freeze_extractor, epochs=rc.richness_epochs,
                         seed=rc.seed)
    cv = cross_validate(ds, cfg, fractions=tuple(rc.fractions), folds=rc.folds, repeats=rc.repeats,
                        pretrained=pretext.net.extractor.state_dict(), progress=progress)
    timings["richness_cv_s"] = round(time.time() - t2, 1)
    reference = reference_predictions(ds, folds=rc.folds, repeats=rc.repeats, seed=rc.seed)
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
    results = {"config": dataclasses.asdict(rc), "pretext": pretext_res, "richness": cv, "claims": _claims(cv),
               "reference": reference,
               "timings": {**timings, "total_s": round(time.time() - t0, 1)}}
    atomic_write_text(out / "table.md", f"Richness (ln lambda) on {cv['n_clusters']} simulated clusters, "
                                        f"{rc.folds}-fold grouped CV x {rc.repeats} repeats, mean ± std\n\n"
                      + _table(cv) + "\n\n" + _reference_line(reference) + "\n\nPretext (band identity) test accuracy: "
                      f"CNN {pretext_res['cnn_test_accuracy']:.3f}; summary statistics raw "
                      f"{pretext_res['stats_raw_accuracy']:.3f}, normalised "
                      f"{pretext_res['stats_normalised_accuracy']:.3f}"
                      f"; chance {pretext_res['chance']:.3f}\n")
    atomic_write_json(out / "results.json", results)
    return results
