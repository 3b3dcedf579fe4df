"""Galaxy-cluster richness from the five band images (Liang et al., Table S2, eq. 1), Base vs pretrained.

Target: ``ln(lambda)`` (richness spans 5-150; its scatter is multiplicative),
standardised with the training subset's mean and standard deviation (kept in
the network's buffers).
Loss (eq. 1): ``MSE + alpha std(|y - y_hat|)`` over the batch (population
standard deviation, the batch being the set the paper's ``std`` runs over).
Metrics: MAE and ``Sigma = std(y - y_hat)`` (the scatter) of ``ln(lambda)``.

Evaluation (:func:`cross_validate`): cluster-grouped K-fold cross-validation
(every view of a cluster on the same side), repeated with different fold
assignments; for each fraction of the training folds, the *same* subset of
clusters trains *Base* (random initialisation) and *Ours* (extractor from the
band pretext); ``val_fraction`` of those clusters pick the training epoch
(early stopping; both models alike); the predictions of all test folds give
MAE and Sigma per repeat, reported as mean ± std over repeats. With a frozen extractor the
band features of every image are computed once and only the head trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from labelsky.data.io import LabelskyDataset
from labelsky.data.transforms import Preprocess
from labelsky.models.bandnet import BandExtractor, RichnessNet
from labelsky.utils import stable_hash

__all__ = ["RichnessConfig", "richness_loss", "richness_metrics", "grouped_folds", "cross_validate",
           "make_richness_net", "train_richness", "predict_richness", "band_features", "reference_predictions"]


@dataclass
class RichnessConfig:
    backbone: str = "resnet18"
    feature_dim: int = 512
    fc_widths: list = field(default_factory=lambda: [1024, 512])
    alpha: float = 1.0
    freeze_extractor: bool = False
    lr: float = 1e-3  # Adam (the paper: SGD 5e-6, momentum 0.9)
    weight_decay: float = 1e-4
    epochs: int = 30  # at most; with validation clusters the epoch of lowest validation loss is kept
    val_fraction: float = 0.2  # of the training clusters held out to pick the epoch (none with < 5 clusters)
    batch_size: int = 32
    stretch: str = "robust_asinh"
    softening: float = 3.0
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def preprocess(self, n_bands: int) -> Preprocess:
        return Preprocess(list(range(n_bands)), noise=[1.0] * n_bands, stretch=self.stretch,
                          softening=self.softening, size=self.image_size)


def richness_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Eq. 1: ``mean((y - y_hat)^2) + alpha * std(|y - y_hat|)`` (population std over the batch)."""
    err = target - pred
    return (err ** 2).mean() + alpha * err.abs().std(unbiased=False)


def richness_metrics(pred, target) -> dict:
    """MAE and Sigma (standard deviation of the residuals) of ``ln(lambda)``."""
    e = np.asarray(target, dtype=float) - np.asarray(pred, dtype=float)
    return {"mae": float(np.abs(e).mean()), "sigma": float(e.std()), "bias": float(e.mean()), "n": int(len(e))}


def grouped_folds(groups, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of every row; all rows of a group share it; groups spread evenly over folds."""
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    order = sorted(uniq, key=lambda g: stable_hash(seed, "fold", g))
    fold_of = {g: i % k for i, g in enumerate(order)}
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def make_richness_net(cfg: RichnessConfig, n_bands: int, extractor_state: dict | None = None) -> RichnessNet:
    torch.manual_seed(cfg.seed)
    ext = BandExtractor(cfg.backbone, 1, cfg.feature_dim)
    if extractor_state is not None:
        ext.load_state_dict(extractor_state)
    return RichnessNet(ext, n_bands, cfg.fc_widths, freeze_extractor=cfg.freeze_extractor)


def _images(ds: LabelskyDataset, rows, cfg: RichnessConfig) -> torch.Tensor:
    pre = cfg.preprocess(len(ds.bands))
    return torch.stack([pre(ds.image(int(r))) for r in rows])


@torch.inference_mode()
def band_features(net: RichnessNet, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """[N, feature_dim, bands] features of the (frozen) extractor."""
    net.extractor.eval()
    return torch.cat([net.band_features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def train_richness(net: RichnessNet, x: torch.Tensor, y: torch.Tensor, cfg: RichnessConfig,
                   features: bool = False, val: tuple | None = None) -> RichnessNet:
    """Train ``net`` on images ``x`` (or precomputed band features with ``features``) and targets ``y``.

    A plain loop: the data are small tensors in memory (cross-validation trains
    hundreds of these), Adam with weight decay, at most ``cfg.epochs`` epochs,
    fixed seed. With ``val = (x_val, y_val)`` the weights of the epoch with the
    lowest validation loss (eq. 1) are kept, so a small training subset does
    not end on an overfitted head.
    """
    import copy

    g = torch.Generator().manual_seed(cfg.seed)
    net.target_mean.fill_(float(y.mean()))
    net.target_std.fill_(float(y.std()) if len(y) > 1 and float(y.std()) > 0 else 1.0)
    y = (y - net.target_mean) / net.target_std  # the loss of eq. 1 on the standardised target
    params = [p for n, p in net.named_parameters() if p.requires_grad and (not features or
                                                                           not n.startswith("extractor."))]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    bs = min(cfg.batch_size, n)
    best, best_state = float("inf"), None
    for _ in range(cfg.epochs):
        net.train()
        if cfg.freeze_extractor or features:
            net.extractor.eval()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - bs + 1 if n >= 2 else 1, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            pred = net.head(x[idx]) if features else net(x[idx])
            loss = richness_loss(pred, y[idx], cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val is not None and len(val[1]) > 1:
            pred = torch.as_tensor(predict_richness(net, val[0], features=features))
            vloss = float(richness_loss(pred, torch.as_tensor(val[1], dtype=pred.dtype), cfg.alpha))
            if vloss < best:
                best, best_state = vloss, copy.deepcopy(net.state_dict())
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


@torch.inference_mode()
def predict_richness(net: RichnessNet, x: torch.Tensor, features: bool = False, batch_size: int = 128) -> np.ndarray:
    net.eval()
    out = [net.head(x[i:i + batch_size]) if features else net(x[i:i + batch_size])
           for i in range(0, len(x), batch_size)]
    if not out:
        return np.zeros(0)
    return (torch.cat(out) * net.target_std + net.target_mean).numpy()


def cross_validate(ds: LabelskyDataset, cfg: RichnessConfig, fractions=(0.01, 0.05, 0.1, 0.2, 0.5, 1.0),
                   folds: int = 10, repeats: int = 3, pretrained: dict | None = None, rows=None,
                   progress: bool = True) -> dict:
    """Base vs Ours (``pretrained`` extractor state) per training fraction; MAE and Sigma mean ± std over repeats.

    Returns ``{"per_repeat": [...], "summary": {model: {fraction: {mae, sigma}}}}``.
    """
    from tqdm.auto import tqdm

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    y_all = torch.tensor(np.log(ds.column("richness")[rows]), dtype=torch.float32)
    groups = ds.column("cluster_id")[rows]
    x_all = _images(ds, rows, cfg)
    models = {"base": None, "ours": pretrained}
    feats = {}
    if cfg.freeze_extractor:  # one pass of each extractor over every image
        for name, state in models.items():
            feats[name] = band_features(make_richness_net(cfg, len(ds.bands), state), x_all)
    per_repeat = []
    bar = tqdm(total=repeats * folds * len(fractions) * 2, desc="richness CV", disable=not progress)
    for r in range(repeats):
        fold = grouped_folds(groups, folds, seed=cfg.seed * 1000 + r)
        preds = {(m, q): np.full(len(rows), np.nan) for m in models for q in fractions}
        for f in range(folds):
            test, pool = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            pool_groups = np.unique(groups[pool])
            order = np.array(sorted(pool_groups, key=lambda gname: stable_hash(cfg.seed, r, f, "subset", gname)))
            for q in fractions:
                chosen = list(order[:max(2, int(round(q * len(order))))])
                n_val = int(round(cfg.val_fraction * len(chosen))) if len(chosen) >= 5 else 0
                fit_rows = pool[np.isin(groups[pool], chosen[n_val:])]
                val_rows = pool[np.isin(groups[pool], chosen[:n_val])]
                for m, state in models.items():
                    run_cfg = dataclasses.replace(cfg, seed=cfg.seed + 7919 * r + 31 * f)
                    net = make_richness_net(run_cfg, len(ds.bands), state)
                    src = feats[m] if cfg.freeze_extractor else x_all
                    net = train_richness(net, src[fit_rows], y_all[fit_rows], run_cfg, features=cfg.freeze_extractor,
                                         val=(src[val_rows], y_all[val_rows]) if n_val else None)
                    preds[(m, q)][test] = predict_richness(net, src[test], features=cfg.freeze_extractor)
                    bar.update(1)
        per_repeat.append({f"{m}/{q}": richness_metrics(p, y_all.numpy()) for (m, q), p in preds.items()})
    bar.close()
    summary = {}
    for m in models:
        summary[m] = {}
        for q in fractions:
            vals = [pr[f"{m}/{q}"] for pr in per_repeat]
            summary[m][str(q)] = {k: {"mean": float(np.mean([v[k] for v in vals])),
                                      "std": float(np.std([v[k] for v in vals], ddof=1)) if len(vals) > 1 else 0.0}
                                  for k in ("mae", "sigma")}
    return {"per_repeat": per_repeat, "summary": summary, "n_clusters": int(len(np.unique(groups))),
            "n_images": int(len(rows)), "fractions": list(fractions), "folds": folds, "repeats": repeats,
            "config": cfg.to_dict()}


def reference_predictions(ds: LabelskyDataset, folds: int = 10, repeats: int = 3, seed: int = 0, rows=None) -> dict:
    """What needs no network, on the folds :func:`cross_validate` uses with all training data.

    ``constant``: the training folds' mean ln(lambda) (a model that learned
    nothing scores this); ``statistics``: gradient boosting on per-band
    summary statistics of the raw images (total flux, percentiles, fraction of
    pixels above 5 sigma) — how much richness a trivial photometric summary
    carries. Returns MAE and Sigma mean ± std over repeats for each.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    from labelsky.methods.selfsup.pretext import summary_statistics

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    y = np.log(ds.column("richness")[rows]).astype(float)
    groups = ds.column("cluster_id")[rows]
    feats = np.stack([summary_statistics(ds.image(int(r))).ravel() for r in rows])  # 7 statistics per band
    per = {"constant": [], "statistics": []}
    for rep in range(repeats):
        fold = grouped_folds(groups, folds, seed=seed * 1000 + rep)
        pred = {k: np.zeros(len(rows)) for k in per}
        for f in range(folds):
            test, train = fold == f, fold != f
            pred["constant"][test] = y[train].mean()
            gbm = HistGradientBoostingRegressor(random_state=seed).fit(feats[train], y[train])
            pred["statistics"][test] = gbm.predict(feats[test])
        for k in per:
            per[k].append(richness_metrics(pred[k], y))
    return {k: {m: {"mean": float(np.mean([v[m] for v in vals])),
                    "std": float(np.std([v[m] for v in vals], ddof=1)) if len(vals) > 1 else 0.0}
                for m in ("mae", "sigma")} for k, vals in per.items()}


def load_extractor_state(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
