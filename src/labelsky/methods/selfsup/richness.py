"""Galaxy-cluster richness from the five band images (Liang et al., Table S2, eq. 1), Base vs pretrained.

Target: ``ln(lambda)`` (richness spans 5-150; its scatter is multiplicative),
standardised with the training subset's mean and standard deviation (kept in
the network's buffers).
Loss (eq. 1): ``MSE + alpha std(|y - y_hat|)`` over the batch (population
standard deviation, the batch being the set the paper's ``std`` runs over).
Metrics of ``ln(lambda)`` (:func:`richness_metrics`): ``mae``; ``sigma``, the
paper's Sigma ``std(|y - y_hat|)``; ``scatter`` ``std(y - y_hat)``, the usual
scatter (about 1.7 times ``sigma`` for Gaussian residuals); ``bias``.

Evaluation (:func:`cross_validate`): cluster-grouped K-fold cross-validation
(every view of a cluster on the same side), repeated with different fold
assignments; for each fraction of the training folds, the *same* subset of
clusters trains *Base* (random initialisation) and *Ours* (extractor from the
band pretext) under the same protocol (optimiser, epochs, early stopping);
``val_fraction`` of those clusters pick the training epoch (both models
alike); the predictions of all test folds give the metrics per repeat,
reported as mean ± std over repeats, and the paired Ours - Base difference
per test fold. Protocols: ``finetune`` (the extractor trains with the head:
the paper's Base is the whole network trained on the labels) and ``frozen``
(the extractor is fixed; its band features of every image are computed once
and only the head trains: a probe of the features, where Base is a random
network).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.data.transforms import Preprocess
from labelsky.errors import SettingsError, unreadable_reason
from labelsky.measures.metrics import regression_metrics as richness_metrics
from labelsky.methods.base import LabelskyModule
from labelsky.methods.parts import Part, describe_parts, one
from labelsky.methods.registry import Fitted
from labelsky.methods.selfsup.config import OPTIMIZERS, PROTOCOLS, RichnessConfig
from labelsky.models.bandnet import BandExtractor, RichnessNet
from labelsky.utils import default_device, stable_hash

__all__ = ["RichnessConfig", "RichnessModel", "richness_loss", "richness_metrics", "grouped_folds", "cross_validate",
           "make_richness_net", "train_richness", "predict_richness", "band_features", "reference_predictions",
           "fraction_rows", "select_rows", "fit", "summary", "load_extractor_state", "PROTOCOLS", "OPTIMIZERS",
           "METRICS", "model_key"]

#: what :func:`richness_metrics` reports and :func:`cross_validate` summarises
METRICS = ("mae", "sigma", "scatter", "bias")


class RichnessModel(LabelskyModule):
    """The model of a ``richness`` run: a :class:`RichnessNet` with its settings (trained by a plain loop,
    :func:`train_richness`).

    ``predict_step(x)`` gives ``{"values": ln(lambda) [N, 1], "embedding":
    the stacked band features [N, feature_dim * bands]}``.
    """

    config_cls = RichnessConfig
    output = "values"

    def __init__(self, config: dict, n_bands: int, extractor_state: dict | None = None, bands: list | None = None):
        super().__init__(config)
        self.save_hyperparameters(ignore=["extractor_state"])
        self.bands = list(bands) if bands else None
        self.net = make_richness_net(self.cfg, n_bands, extractor_state)

    def preprocess(self, ds: LabelskyDataset) -> Preprocess:
        """The model's preprocessing for ``ds``, whose bands must be the training bands, by name and order."""
        if (self.bands is not None and list(ds.bands) != self.bands) or len(ds.bands) != self.net.n_bands:
            raise SettingsError(f"{ds.path}: bands {ds.bands}; the richness model was trained on "
                                f"{self.bands or self.net.n_bands} (the same bands, in the same order, are needed)")
        return self.cfg.preprocess(ds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def embed(self, x):
        return self.net.band_features(x).flatten(1)

    def from_embedding(self, embedding):
        feats = embedding.view(len(embedding), -1, self.net.n_bands)
        return (self.net.head(feats) * self.net.target_std + self.net.target_mean)[:, None]

    def output_names(self) -> list[str]:
        return ["ln_richness"]

    def truth(self, ds: LabelskyDataset):
        """ln(lambda) of every row (NaN without a richness > 0)."""
        if "richness" not in ds.catalog.column_names:
            return None
        lam = np.asarray(ds.column("richness"), dtype=np.float64)
        return np.where(lam > 0, np.log(np.where(lam > 0, lam, 1.0)), np.nan)[:, None]


def select_rows(datasets: dict, cfg: RichnessConfig | None = None) -> dict:
    """Rows of the one cluster ``data`` dataset with a richness: ``train`` (fit) and ``val`` (the epoch of
    lowest loss is kept), ``cfg.val_fraction`` of the clusters held out whole; one part each."""
    cfg = cfg or RichnessConfig()
    (ds,) = datasets["data"]
    for col in ("richness", "cluster_id"):
        if col not in ds.catalog.column_names:
            raise DatasetError(f"{ds.path}: no {col!r} column; richness needs cluster fields (labelsky simulate "
                               f"--kind clusters, or an imported catalog with these columns)")
    rows = np.flatnonzero(np.isfinite(ds.column("richness")) & (ds.column("richness") > 0))
    if len(rows) < 2:
        raise DatasetError(f"{ds.path}: {len(rows)} row(s) with a richness > 0; at least 2 needed")
    groups = ds.column("cluster_id")[rows]
    uniq = sorted(np.unique(groups), key=lambda g: stable_hash(cfg.seed, "final", g))
    n_val = int(round(cfg.val_fraction * len(uniq))) if len(uniq) >= 5 else 0
    val = np.isin(groups, uniq[:n_val])
    return {"train": [Part(ds, rows[~val], None)], "val": [Part(ds, rows[val], None)]}


def fit(run_dir, parts: dict, cfg: RichnessConfig, *, overwrite: bool = False, progress: bool = True) -> Fitted:
    """Train one richness model on every cluster of ``parts`` into a run folder, then cross-validate Base vs
    Ours (:func:`cross_validate`, ``RUN/results.json``).

    ``cfg.extractor``: an ``extractor.pt`` of ``labelsky pretrain`` to start
    from (Ours), else a random one (Base). The model is written to
    ``RUN/checkpoints/best.ckpt`` for ``labelsky catalog``. A finished run with
    the same settings and data is loaded, not retrained; the cross-validation
    (whose settings may change) is redone.
    """
    from labelsky.methods.run import Run
    from labelsky.utils import atomic_path, atomic_write_json

    train, val = one(parts, "train"), one(parts, "val")
    ds, extractor = train.dataset, cfg.extractor
    state = load_extractor_state(extractor) if extractor else None
    data = {"train": describe_parts([train]), "val": describe_parts([val]),
            "extractor": _file_digest(extractor) if extractor else None}
    run = Run.start(run_dir, method="richness", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=[ds.path] + ([extractor] if extractor else []))
    best = run.checkpoint_dir() / "best.ckpt"
    if best.is_file():
        model = RichnessModel.load(best)
    else:
        model = RichnessModel(cfg.to_dict(), len(ds.bands), state, bands=list(ds.bands))
        tr, va = train.rows, val.rows
        x = _images(ds, np.concatenate([tr, va]), cfg)
        y = torch.tensor(np.log(ds.column("richness")[np.concatenate([tr, va])]), dtype=torch.float32)
        n = len(tr)
        train_richness(model.net, x[:n], y[:n], cfg, val=(x[n:], y[n:]) if len(va) else None)
        best.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(best) as tmp:
            torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, tmp)
        model = model.eval()
    rows = np.sort(np.concatenate([train.rows, val.rows]))
    res = cross_validate(ds, cfg, fractions=tuple(cfg.fractions), folds=cfg.folds, repeats=cfg.repeats,
                         pretrained=state, rows=rows, progress=progress)
    res["extractor"] = str(extractor) if extractor else None
    atomic_write_json(Path(run_dir) / "results.json", res)
    return Fitted(model, res)


def summary(run_dir: Path, res: dict) -> list[str]:
    """What ``labelsky richness`` prints after training."""
    lines = []
    for model in res["summary"]:
        for q in res["fractions"]:
            c = res["summary"][model][str(q)]
            lines.append(f"{model} {100 * q:g} %: MAE {c['mae']['mean']:.4f} ± {c['mae']['std']:.4f}, "
                         f"Sigma {c['sigma']['mean']:.4f} ± {c['sigma']['std']:.4f}, "
                         f"scatter {c['scatter']['mean']:.4f} ± {c['scatter']['std']:.4f}")
    return lines + [f"results: {Path(run_dir) / 'results.json'}; model: "
                    f"{Path(run_dir) / 'checkpoints' / 'best.ckpt'}"]


def _file_digest(path) -> dict:
    """A weight file's identity: its path and the sha256 of its bytes (a retrained extractor is other data)."""
    import hashlib

    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"extractor weights {path} do not exist (expected RUN/extractor.pt of labelsky pretrain)")
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def richness_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Eq. 1: ``mean((y - y_hat)^2) + alpha * std(|y - y_hat|)`` (population std over the batch)."""
    err = target - pred
    return (err ** 2).mean() + alpha * err.abs().std(unbiased=False)


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
    pre = cfg.preprocess(ds)
    return torch.stack([pre(ds.image(int(r))) for r in rows])


@torch.inference_mode()
def band_features(net: RichnessNet, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """[N, feature_dim, bands] features of the (frozen) extractor."""
    net.extractor.eval()
    dev = net.target_mean.device
    return torch.cat([net.band_features(images[i:i + batch_size].to(dev)).cpu()
                      for i in range(0, len(images), batch_size)])


def _optimizer(params, cfg: RichnessConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_richness(net: RichnessNet, x: torch.Tensor, y: torch.Tensor, cfg: RichnessConfig,
                   features: bool = False, val: tuple | None = None) -> RichnessNet:
    """Train ``net`` on images ``x`` (or precomputed band features with ``features``) and targets ``y``.

    A plain loop: the data are small tensors in memory (cross-validation trains
    hundreds of these), ``cfg.optimizer`` (Adam, or SGD with momentum), at most
    ``cfg.max_epochs`` epochs, fixed seed. The extractor trains too unless
    ``cfg.freeze_extractor`` or ``features``. With ``val = (x_val, y_val)`` the
    weights of the epoch with the lowest validation loss (eq. 1) are kept, so a
    small training subset does not end on an overfitted head, and training
    stops after ``cfg.patience`` epochs without a lower one.
    """
    import copy

    dev = torch.device(default_device(cfg.device))
    net = net.to(dev)
    y = y.to(dev)
    g = torch.Generator().manual_seed(cfg.seed)
    net.target_mean.fill_(float(y.mean()))
    net.target_std.fill_(float(y.std()) if len(y) > 1 and float(y.std()) > 0 else 1.0)
    y = (y - net.target_mean) / net.target_std  # the loss of eq. 1 on the standardised target
    params = [p for n, p in net.named_parameters() if p.requires_grad and (not features or
                                                                           not n.startswith("extractor."))]
    opt = _optimizer(params, cfg)
    n = len(y)
    bs = min(cfg.batch_size, n)
    best, best_state, since_best = float("inf"), None, 0
    net.epochs_run = 0
    for _ in range(cfg.max_epochs):
        net.epochs_run += 1
        net.train()
        if cfg.freeze_extractor or features:
            net.extractor.eval()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - bs + 1 if n >= 2 else 1, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:
                continue
            xb = x[idx].to(dev, non_blocking=True)
            pred = net.head(xb) if features else net(xb)
            loss = richness_loss(pred, y[idx], cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val is not None and len(val[1]) > 1:
            pred = torch.as_tensor(predict_richness(net, val[0], features=features)).to(dev)
            vloss = float(richness_loss(pred, torch.as_tensor(val[1], dtype=pred.dtype, device=dev), cfg.alpha))
            if vloss < best:
                best, best_state, since_best = vloss, copy.deepcopy(net.state_dict()), 0
            else:
                since_best += 1
                if cfg.patience is not None and since_best >= cfg.patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


@torch.inference_mode()
def predict_richness(net: RichnessNet, x: torch.Tensor, features: bool = False, batch_size: int = 128) -> np.ndarray:
    net.eval()
    dev = net.target_mean.device
    out = [net.head(x[i:i + batch_size].to(dev)) if features else net(x[i:i + batch_size].to(dev))
           for i in range(0, len(x), batch_size)]
    if not out:
        return np.zeros(0)
    return (torch.cat(out) * net.target_std + net.target_mean).cpu().numpy()


def model_key(init: str, protocol: str) -> str:
    """The name of a model in :func:`cross_validate`'s results: ``base`` / ``ours`` (fine-tuned), or
    ``base_frozen`` / ``ours_frozen``."""
    return init if protocol == "finetune" else f"{init}_{protocol}"


def _extractor_change(before: list, net: RichnessNet) -> float:
    """Relative change of the extractor's weights, ``|theta_after - theta_before| / |theta_before|``."""
    num = sum(float((p.detach().to(b.device) - b).pow(2).sum()) for b, p in zip(before, net.extractor.parameters()))
    den = sum(float(b.pow(2).sum()) for b in before)
    return float(np.sqrt(num / den)) if den > 0 else 0.0


def _mean_std(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def fraction_rows(groups, pool, fraction: float, *, seed: int, repeat: int, fold: int,
                  val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The training rows of one fold at one fraction of its training clusters, as (fit, val).

    The clusters of ``pool`` are put in an order fixed by (seed, repeat, fold); a fraction takes the first
    ``fraction`` of them (at least 2), so a smaller fraction is a subset of a larger one and every model (and
    every reference) sees the same clusters. ``val_fraction`` of the chosen clusters (when there are at least
    5) are held out whole to pick the training epoch."""
    groups, pool = np.asarray(groups), np.asarray(pool)
    order = sorted(np.unique(groups[pool]), key=lambda g: stable_hash(seed, repeat, fold, "subset", g))
    chosen = list(order[:max(2, int(round(fraction * len(order))))])
    n_val = int(round(val_fraction * len(chosen))) if len(chosen) >= 5 else 0
    return pool[np.isin(groups[pool], chosen[n_val:])], pool[np.isin(groups[pool], chosen[:n_val])]


def cross_validate(ds: LabelskyDataset, cfg: RichnessConfig, fractions=(0.01, 0.05, 0.1, 0.2, 0.5, 1.0),
                   folds: int = 10, repeats: int = 3, pretrained: dict | None = None, rows=None,
                   progress: bool = True, protocols=None) -> dict:
    """Base vs Ours (``pretrained`` extractor state) per training fraction and protocol.

    ``protocols``: any of :data:`PROTOCOLS` (default: ``frozen`` with
    ``cfg.freeze_extractor``, else ``finetune``); every protocol trains Base
    (random initialisation) and, with ``pretrained``, Ours, on the same
    clusters with the same settings. Model names: :func:`model_key`.

    Returns ``{"per_repeat": [{"model/fraction": metrics}], "summary": {model:
    {fraction: {metric: {mean, std}, "extractor_change": {mean, std}, "epochs_run": {mean, std}}}},
    "paired": {protocol: {fraction: {metric: {mean, sem, n}}}}, ...}``: the
    summary over repeats of the metrics of all test folds together; the
    relative change of the extractor's weights in training (0 when frozen);
    the epochs trained (fewer than ``cfg.max_epochs`` when ``cfg.patience`` stopped them);
    ``paired`` the Ours - Base difference of each metric per test fold and
    repeat (mean and standard error; negative: Ours better).
    """
    from tqdm.auto import tqdm

    protocols = tuple(protocols) if protocols is not None else (("frozen",) if cfg.freeze_extractor
                                                                 else ("finetune",))
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise SettingsError(f"protocols {list(protocols)}: expected some of {PROTOCOLS}")
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    y_all = torch.tensor(np.log(ds.column("richness")[rows]), dtype=torch.float32)
    groups = ds.column("cluster_id")[rows]
    x_all = _images(ds, rows, cfg)
    inits = {"base": None, **({"ours": pretrained} if pretrained is not None else {})}
    cfgs = {p: dataclasses.replace(cfg, freeze_extractor=p == "frozen") for p in protocols}
    feats = {}
    if "frozen" in protocols:  # one pass of each extractor over every image
        for name, state in inits.items():
            net = make_richness_net(cfgs["frozen"], len(ds.bands), state).to(default_device(cfg.device))
            feats[name] = band_features(net, x_all)
    keys = [(model_key(i, p), i, p) for p in protocols for i in inits]
    per_repeat, fold_metrics, change, epochs_run = [], {}, {}, {}
    bar = tqdm(total=repeats * folds * len(fractions) * len(keys), desc="richness CV", disable=not progress)
    for r in range(repeats):
        fold = grouped_folds(groups, folds, seed=cfg.seed * 1000 + r)
        preds = {(k, q): np.full(len(rows), np.nan) for k, _, _ in keys for q in fractions}
        for f in range(folds):
            test, pool = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            for q in fractions:
                fit_rows, val_rows = fraction_rows(groups, pool, q, seed=cfg.seed, repeat=r, fold=f,
                                                   val_fraction=cfg.val_fraction)
                n_val = len(val_rows)
                for key, init, protocol in keys:
                    frozen = protocol == "frozen"
                    run_cfg = dataclasses.replace(cfgs[protocol], seed=cfg.seed + 7919 * r + 31 * f)
                    net = make_richness_net(run_cfg, len(ds.bands), inits[init])
                    before = [p.detach().clone() for p in net.extractor.parameters()]
                    src = feats[init] if frozen else x_all
                    net = train_richness(net, src[fit_rows], y_all[fit_rows], run_cfg, features=frozen,
                                         val=(src[val_rows], y_all[val_rows]) if n_val else None)
                    change.setdefault((key, q), []).append(_extractor_change(before, net))
                    epochs_run.setdefault((key, q), []).append(net.epochs_run)
                    preds[(key, q)][test] = predict_richness(net, src[test], features=frozen)
                    fold_metrics.setdefault((key, q), []).append(
                        richness_metrics(preds[(key, q)][test], y_all.numpy()[test]))
                    bar.update(1)
        per_repeat.append({f"{k}/{q}": richness_metrics(p, y_all.numpy()) for (k, q), p in preds.items()})
    bar.close()
    summary = {}
    for key, _, _ in keys:
        summary[key] = {}
        for q in fractions:
            vals = [pr[f"{key}/{q}"] for pr in per_repeat]
            summary[key][str(q)] = {m: _mean_std([v[m] for v in vals]) for m in METRICS}
            summary[key][str(q)]["extractor_change"] = _mean_std(change[(key, q)])
            summary[key][str(q)]["epochs_run"] = _mean_std(epochs_run[(key, q)])
    paired = {}
    if "ours" in inits:
        for p in protocols:
            paired[p] = {}
            for q in fractions:
                ours, base = fold_metrics[(model_key("ours", p), q)], fold_metrics[(model_key("base", p), q)]
                paired[p][str(q)] = {}
                for m in ("mae", "sigma", "scatter"):
                    d = np.array([o[m] - b[m] for o, b in zip(ours, base)])
                    paired[p][str(q)][m] = {"mean": float(d.mean()), "n": int(len(d)),
                                            "sem": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0}
    return {"per_repeat": per_repeat, "summary": summary, "paired": paired, "protocols": list(protocols),
            "n_clusters": int(len(np.unique(groups))), "n_images": int(len(rows)), "fractions": list(fractions),
            "folds": folds, "repeats": repeats, "config": cfg.to_dict()}


def reference_predictions(ds: LabelskyDataset, folds: int = 10, repeats: int = 3, seed: int = 0, rows=None,
                          fractions=None, val_fraction: float = 0.2) -> dict:
    """What needs no network, on the folds :func:`cross_validate` uses with all training data.

    ``constant``: the training folds' mean ln(lambda) (a model that learned
    nothing scores this); ``statistics``: gradient boosting on per-band
    summary statistics of the raw images (total flux, percentiles, fraction of
    pixels above 5 sigma) — how much richness a trivial photometric summary
    carries. Returns every metric of :data:`METRICS`, mean ± std over repeats, for each.

    With ``fractions`` (and the ``seed``/``val_fraction`` of the networks' :class:`RichnessConfig`), also
    ``by_fraction``: ``{name: {fraction: metrics}}``, both references fitted on exactly the clusters the
    networks train on at that fraction (:func:`fraction_rows`; the epoch-choice clusters included, as a
    reference has no epochs to choose).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    from labelsky.methods.selfsup.pretext import summary_statistics

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    y = np.log(ds.column("richness")[rows]).astype(float)
    groups = ds.column("cluster_id")[rows]
    feats = np.stack([summary_statistics(ds.image(int(r))).ravel() for r in rows])  # 7 statistics per band
    qs = [None] + [float(q) for q in (fractions or [])]
    per = {(k, q): [] for k in ("constant", "statistics") for q in qs}
    for rep in range(repeats):
        fold = grouped_folds(groups, folds, seed=seed * 1000 + rep)
        pred = {key: np.zeros(len(rows)) for key in per}
        for f in range(folds):
            test, pool = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            for q in qs:
                if q is None:
                    train = pool
                else:
                    fit_rows, val_rows = fraction_rows(groups, pool, q, seed=seed, repeat=rep, fold=f,
                                                       val_fraction=val_fraction)
                    train = np.concatenate([fit_rows, val_rows])
                pred[("constant", q)][test] = y[train].mean()
                gbm = HistGradientBoostingRegressor(random_state=seed).fit(feats[train], y[train])
                pred[("statistics", q)][test] = gbm.predict(feats[test])
        for key in per:
            per[key].append(richness_metrics(pred[key], y))
    out = {k: {m: _mean_std([v[m] for v in per[(k, None)]]) for m in METRICS} for k in ("constant", "statistics")}
    if fractions:
        out["by_fraction"] = {k: {str(q): {m: _mean_std([v[m] for v in per[(k, float(q))]]) for m in METRICS}
                                  for q in fractions} for k in ("constant", "statistics")}
    return out


def load_extractor_state(path: str | Path) -> dict:
    """The extractor weights written by ``labelsky pretrain`` (``RUN/extractor.pt``), loaded safely."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"extractor weights {path} do not exist (expected RUN/extractor.pt of labelsky pretrain)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file means the same to the user
        raise SettingsError(f"extractor weights {path} cannot be read safely: {unreadable_reason(err)}") from None
    if not isinstance(state, dict):
        raise SettingsError(f"{path} is not a state dict of extractor weights")
    return state
