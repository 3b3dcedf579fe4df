"""``labelsky reproduce etvae``: semi-supervised vote fractions with the ET-VAE (the paper's Table 1) on the simulator.

Simulated galaxies of every class carry Galaxy Zoo-style votes for "smooth /
featured / artifact" (3-60 volunteers each). For each seed, ``n_labels``
galaxies of the training pool are "labelled" (the same subsets for every
regime); ``val_fraction`` of them select the model and stop training (the
label budget is never exceeded), the rest train; the whole pool serves,
without votes, as unlabelled data. Each regime (``supervised``, ``semi``,
``two_step``) is trained with and, for the ablation, without the ET layers,
with one budget: ``epochs`` x ``steps_per_epoch`` classifier updates (one
pass over the pool per epoch, in every regime; early stopping may end a run
sooner, and the updates the selected model had are recorded), and scored by
the RMSE of predicted vote fractions on the test galaxies.

Outputs: ``results.json`` (every run, mean ± std per cell), ``table.md``
(regimes x label counts), ``figures/rmse_vs_labels.png``, reconstructions
(``runs/.../figures``) and ``figures/poses.png`` (one galaxy rotated by
several angles and its canonical views, which should look alike). Finished
runs are reused when the reproduction is run again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.errors import SettingsError
from labelsky.reproduce.registry import Reproduction
from labelsky.utils import atomic_write_json, atomic_write_text, check_settings_record

__all__ = ["ETVAEReproConfig", "run_etvae", "poses_figure"]


@dataclass
class ETVAEReproConfig:
    n_objects: int = 3000
    sample: str = "etvae"  # the paper's Galaxy Zoo: the brightest SDSS galaxies (r < 17.0), Galaxy-Zoo framing
    survey: str = "sdss"
    stamp_size: int = 32
    label_counts: list = field(default_factory=lambda: [100, 300, 800, 1200])
    regimes: list = field(default_factory=lambda: ["supervised", "semi", "two_step"])
    et_variants: list = field(default_factory=lambda: [True, False])  # False: the ablation without ET layers
    seeds: list = field(default_factory=lambda: [0, 1])
    latent_dim: int = 100
    width: int = 32
    epochs: int = 15
    pretrain_epochs: int = 10
    batch_size: int = 64
    likelihood: str = "multinomial"
    val_fraction: float = 0.2  # of each label budget: selects the model
    optimisers: str = "separate"
    patience: int = 6
    sim_seed: int = 0
    workers: int | None = None

    @classmethod
    def quick(cls, **kw) -> "ETVAEReproConfig":
        base = dict(n_objects=240, label_counts=[40, 100], seeds=[0], epochs=2, pretrain_epochs=1, latent_dim=16,
                    width=8, batch_size=32)
        base.update(kw)
        return cls(**base)


def _cell(values) -> dict:
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return {"mean": float(a.mean()) if len(a) else None, "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "n": int(len(a)), "values": a.tolist()}


def poses_figure(model, ds, row: int, path, angles=(0, 45, 90, 135, 180, 270)) -> Path:
    """One galaxy rotated by ``angles`` (degrees) and the canonical views the ET layers make of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F

    from labelsky.measures.figures import save_figure

    x = model.cfg.preprocess(ds)(ds.image(int(row)))[None]
    xs = []
    for a in angles:
        t = torch.tensor([a * np.pi / 180.0])
        c, s = torch.cos(t), torch.sin(t)
        theta = torch.stack([torch.cat([c, -s, torch.zeros(1)]), torch.cat([s, c, torch.zeros(1)])])[None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        xs.append(F.grid_sample(x, grid, align_corners=False))
    xs = torch.cat(xs)
    with torch.no_grad():
        canon, _ = model.model.canonicalise(xs)
    fig, axes = plt.subplots(2, len(angles), figsize=(1.3 * len(angles), 2.8), squeeze=False)
    for j, a in enumerate(angles):
        for i, img in enumerate((xs, canon)):
            axes[i][j].imshow(img[j, 0].numpy(), cmap="gray", origin="lower")
            axes[i][j].set_xticks([]), axes[i][j].set_yticks([])
        axes[0][j].set_title(f"{a} deg", fontsize=8)
    axes[0][0].set_ylabel("input", fontsize=8)
    axes[1][0].set_ylabel("canonical", fontsize=8)
    return save_figure(fig, path)


def _curve_figure(path: Path, results: dict, rc: ETVAEReproConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.measures.figures import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for et in rc.et_variants:
        for regime in rc.regimes:
            key = f"{regime}{'' if et else '_no_et'}"
            cells = [results["summary"][key][str(n)] for n in rc.label_counts]
            ax.errorbar(rc.label_counts, [c["mean"] for c in cells], yerr=[c["std"] for c in cells], marker="o",
                        ms=3, capsize=2, ls="-" if et else "--", label=key)
    ax.set_xlabel("labelled galaxies"), ax.set_ylabel("RMSE of vote fractions (test)")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def run_etvae(out: str | Path, rc: ETVAEReproConfig | None = None, progress: bool = True) -> dict:
    """Simulate, train every (seed, label count, regime, ET or not), evaluate; returns the results."""
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.methods.parts import Part
    from labelsky.methods.semisup.module import SemiSupConfig, SemiSupModule, fit, split_label_budget, steps_per_epoch

    rc = rc or ETVAEReproConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, rc)
    t0 = time.time()
    from labelsky.data.simulate.samples import sample_settings

    ds = simulate_galaxies(out / "sim", n_objects=rc.n_objects, stamp_size=rc.stamp_size, seed=rc.sim_seed,
                           workers=rc.workers, progress=progress, reuse=True, sample=rc.sample,
                           **sample_settings(rc.sample, surveys=[rc.survey]))[rc.survey]
    split = ds.column("split").astype(str)
    votes_total = sum(ds.column(c) for c in ("votes_smooth", "votes_featured", "votes_artifact"))
    has_votes = votes_total > 0
    pool = np.flatnonzero((split == "train") & has_votes)
    test = np.flatnonzero((split == "test") & has_votes)
    if max(rc.label_counts) > len(pool):
        raise SettingsError(f"{max(rc.label_counts)} labelled galaxies asked for, the training pool has {len(pool)}")
    runs = []
    for seed in rc.seeds:
        for n in rc.label_counts:
            labelled, val = split_label_budget(pool, n, val_fraction=rc.val_fraction, seed=seed)
            for et in rc.et_variants:
                for regime in rc.regimes:
                    key = f"{regime}{'' if et else '_no_et'}"
                    run_dir = out / "runs" / f"seed{seed}" / f"n{n}" / key
                    done = run_dir / "eval.json"
                    trained_now = not done.exists()
                    if trained_now:
                        t1 = time.time()
                        cfg = SemiSupConfig(regime=regime, latent_dim=rc.latent_dim, width=rc.width,
                                            et_groups=["translation", "rotation_scale"] if et else [],
                                            likelihood=rc.likelihood, max_epochs=rc.epochs,
                                            pretrain_epochs=rc.pretrain_epochs, batch_size=rc.batch_size, seed=seed,
                                            optimisers=rc.optimisers, patience=rc.patience)
                        parts = {"labelled": [Part(ds, labelled)], "unlabelled": [Part(ds, pool)],
                                 "val": [Part(ds, val)], "test": [Part(ds, test)]}
                        model, report = fit(run_dir, parts, cfg, progress=progress, overwrite=True)
                        atomic_write_json(done, {"rmse": report["test_rmse"],
                                                 "n_test": int(len(test)), "n_train": int(len(labelled)),
                                                 "n_val": int(len(val)),
                                                 "steps_per_epoch": steps_per_epoch(cfg, len(labelled), len(pool)),
                                                 "vote_updates": int(model.n_vote_updates),
                                                 "elbo_updates": int(model.n_elbo_updates),
                                                 "seconds": round(time.time() - t1, 1)})
                    runs.append({"seed": seed, "n_labels": n, "regime": regime, "et": et,
                                 "run_dir": str(run_dir.relative_to(out)), "trained_now": trained_now,
                                 **json.loads(done.read_text())})
    summary = {}
    for et in rc.et_variants:
        for regime in rc.regimes:
            key = f"{regime}{'' if et else '_no_et'}"
            summary[key] = {str(n): _cell([r["rmse"] for r in runs if r["regime"] == regime and r["et"] == et
                                           and r["n_labels"] == n]) for n in rc.label_counts}
    updates = {key: {str(n): _cell([r.get("vote_updates") for r in runs if r["n_labels"] == n
                                    and f"{r['regime']}{'' if r['et'] else '_no_et'}" == key])
                     for n in rc.label_counts} for key in summary}
    budget = {"steps_per_epoch": steps_per_epoch(SemiSupConfig(batch_size=rc.batch_size), 0, len(pool)),
              "max_classifier_updates": rc.epochs * steps_per_epoch(SemiSupConfig(batch_size=rc.batch_size), 0,
                                                                    len(pool)),
              "selected_model_vote_updates": updates,
              "selection": f"{rc.val_fraction:.0%} of each label budget (the rest trains)"}
    results = {"config": dataclasses.asdict(rc), "n_pool": int(len(pool)), "n_test": int(len(test)),
               "budget": budget, "runs": runs, "summary": summary, "claims": _claims(summary, rc)}
    _curve_figure(out / "figures" / "rmse_vs_labels.png", results, rc)
    if True in rc.et_variants:
        best = out / "runs" / f"seed{rc.seeds[0]}" / f"n{max(rc.label_counts)}" / "semi" / "checkpoints" / "best.ckpt"
        if best.exists():
            poses_figure(SemiSupModule.load(best), ds, int(test[0]), out / "figures" / "poses.png")
    results["seconds"] = round(time.time() - t0, 1)
    results["run_seconds"] = round(sum(r.get("seconds", 0.0) for r in runs), 1)
    lines = ["| regime | " + " | ".join(f"{n} labels" for n in rc.label_counts) + " |",
             "|---|" + "---|" * len(rc.label_counts)]
    for key, cells in summary.items():
        lines.append(f"| {key} | " + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" for c in cells.values()) + " |")
    atomic_write_text(out / "table.md", f"RMSE of predicted vote fractions on {len(test)} test galaxies, "
                                        f"{len(rc.seeds)} seed(s), mean ± std; every regime up to "
                                        f"{budget['max_classifier_updates']} classifier updates, model selected "
                                        f"on {budget['selection']}\n\n" + "\n".join(lines) + "\n")
    atomic_write_json(out / "results.json", results)
    return results


# settings that change what a finished run means; seeds, label counts, regimes, variants and workers may differ
_VARYING = ("seeds", "label_counts", "regimes", "et_variants", "workers")


def _check_settings(out: Path, rc: ETVAEReproConfig) -> None:
    """Finished runs are reused only by a reproduction with the same settings: a folder made with others is
    refused by name instead of being reported under the new settings."""
    check_settings_record(out, {k: v for k, v in dataclasses.asdict(rc).items() if k not in _VARYING},
                          error=SettingsError, unrecorded="runs")


def _claims(summary: dict, rc: ETVAEReproConfig) -> dict:
    """Semi-supervised minus supervised RMSE per label count (negative = semi better), with and without ET."""
    out = {}
    for suffix in ("", "_no_et"):
        for regime in ("semi", "two_step"):
            if f"{regime}{suffix}" in summary and f"supervised{suffix}" in summary:
                out[f"{regime}{suffix}_minus_supervised{suffix}"] = {
                    str(n): (summary[f"{regime}{suffix}"][str(n)]["mean"]
                             - summary[f"supervised{suffix}"][str(n)]["mean"])
                    for n in rc.label_counts}
    for regime in rc.regimes:
        if regime in summary and f"{regime}_no_et" in summary:
            out[f"{regime}_et_minus_no_et"] = {str(n): summary[regime][str(n)]["mean"]
                                               - summary[f"{regime}_no_et"][str(n)]["mean"] for n in rc.label_counts}
    return out


REPRODUCTION = Reproduction(
    name="etvae", config_cls=ETVAEReproConfig, run=run_etvae, table="table.md",
    options={"n": "n_objects", "epochs": "epochs", "seeds": "seeds", "stamp_size": "stamp_size", "workers": "workers",
             "seed": "sim_seed"},
    description="Nishikawa-Toomey et al.: ET-VAE vote RMSE vs labels, three regimes, with and without ET layers")
