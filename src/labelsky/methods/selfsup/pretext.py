"""Self-supervised pretext tasks on multi-band images (Liang et al.): which band is this? which colour order?

``bands``          every single-band image of a multi-band cutout is an example whose label is its band
                   (u, g, r, i, z, or any survey's bands); one-channel extractor.
``channel_order``  the paper's RGB variant: three bands (e.g. g, r, i as RGB) are shuffled by one of the six
                   permutations; the label is the permutation; three-channel extractor. Colour and noise
                   level tell the channels apart without any structure (a classifier on per-channel
                   statistics solves it after ``khan``, ``robust_asinh`` or ``standardize``); after the
                   ``equalize`` stretch every channel has the same distribution of values and only the
                   arrangement of the pixels is left (:func:`pretext_statistics_baseline` measures both).

A pretext that a trivial statistic solves teaches nothing. Raw fluxes give
the band away through the sky noise and flux scale alone, so images are
normalised per band and per image (``robust_asinh``: median subtracted,
divided by the MAD noise, asinh): what distinguishes bands afterwards is
structure (which sources are bright, how many, their colours relative to each
other). :func:`summary_statistics` and :func:`statistics_baseline` measure
how far per-image statistics alone still get, on raw and on normalised
images, for the same split.

Splits (:func:`select_rows`): whole clusters (or objects) go to ``train``,
``val`` (picks the checkpoint) or ``test`` (70 / 10 / 20 %); the accuracy a
run reports (``RUN/test.json``, :func:`pretext_accuracy`) is that of ``test``,
which neither training nor checkpoint selection has seen.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.data.transforms import Preprocess
from labelsky.errors import SettingsError
from labelsky.methods.base import LabelskyModule
from labelsky.methods.epochs import EpochSampler, KeyedDataset
from labelsky.methods.parts import Part, describe_parts, one
from labelsky.methods.registry import Fitted
from labelsky.methods.run import Run
from labelsky.methods.selfsup.config import TASKS, PretextConfig
from labelsky.methods.training import build_trainer
from labelsky.models.bandnet import PretextClassifier

__all__ = ["PretextConfig", "PretextModule", "BandPretextDataset", "ChannelOrderDataset", "PERMUTATIONS",
           "summary_statistics", "statistics_baseline", "pretext_statistics_baseline",
           "fit", "summary", "select_rows", "pretext_accuracy",
           "split_groups", "TASKS", "SPLIT_FRACTIONS"]

#: shares of the groups (clusters, else objects) in the pretext's training, validation and test parts
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
PERMUTATIONS = list(itertools.permutations(range(3)))


class BandPretextDataset(torch.utils.data.Dataset):
    """Item ``k`` = band ``k % n_bands`` of object ``rows[k // n_bands]``: ``(image [1, H, W], band index)``."""

    def __init__(self, ds: LabelskyDataset, rows, preprocess: Preprocess, bands: list[str] | None = None):
        self.ds, self.rows, self.pre = ds, np.asarray(rows, dtype=np.int64), preprocess
        self.bands = list(bands or ds.bands)
        self.band_index = [ds.bands.index(b) for b in self.bands]

    def __len__(self):
        return len(self.rows) * len(self.bands)

    def __getitem__(self, k):
        obj, b = divmod(int(k), len(self.bands))
        img = self.ds.image(int(self.rows[obj]))[[self.band_index[b]]]
        return self.pre(img), b


class ChannelOrderDataset(torch.utils.data.Dataset):
    """Item ``k`` = object ``rows[k // 6]`` with its three RGB bands in permutation ``k % 6``."""

    def __init__(self, ds: LabelskyDataset, rows, preprocess: Preprocess, rgb_bands: list[str]):
        self.ds, self.rows, self.pre = ds, np.asarray(rows, dtype=np.int64), preprocess
        self.index = [ds.bands.index(b) for b in rgb_bands]

    def __len__(self):
        return len(self.rows) * len(PERMUTATIONS)

    def __getitem__(self, k):
        obj, p = divmod(int(k), len(PERMUTATIONS))
        img = self.ds.image(int(self.rows[obj]))[self.index]
        return self.pre(img[list(PERMUTATIONS[p])]), p


def _dataset(ds, rows, cfg: PretextConfig):
    if cfg.task == "bands":
        pre = Preprocess([0], stretch=cfg.stretch, softening=cfg.softening, size=cfg.image_size,
                         noise=[1.0])
        return BandPretextDataset(ds, rows, pre, cfg.bands)
    pre = Preprocess([0, 1, 2], stretch=cfg.stretch, softening=cfg.softening, size=cfg.image_size,
                     noise=[1.0] * 3)
    return ChannelOrderDataset(ds, rows, pre, cfg.rgb_bands(ds))


class PretextModule(LabelskyModule):
    """The pretext classifier. Its output on a dataset is its embedding: with the ``bands`` task, the features
    of each band image of a galaxy side by side (``[N, bands x feature_dim]``); with ``channel_order``, the
    features of its three RGB bands."""

    config_cls = PretextConfig
    output = "embedding"

    def __init__(self, config: dict, n_classes: int, in_chans: int, class_names: list | None = None):
        super().__init__(config)
        self.save_hyperparameters()
        self.net = PretextClassifier(n_classes, self.cfg.backbone, in_chans, self.cfg.feature_dim, self.cfg.weights)

    def forward(self, x):
        return self.net(x)

    def _shared(self, batch, name):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{name}_loss", loss, prog_bar=name == "val", batch_size=len(y), sync_dist=True)
        self.log(f"{name}_acc", (logits.argmax(1) == y).float().mean(), prog_bar=name == "val", batch_size=len(y),
                 sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared(batch, "val")

    def classify(self, x):
        """Probabilities of the pretext's classes (bands or permutations) of its own images."""
        return F.softmax(self.net.head(F.relu(self.net.extractor(x))), dim=1)

    def embed(self, x):
        if self.cfg.task == "bands":  # every band image of a galaxy through the one-band extractor
            n, b = x.shape[:2]
            return self.net.extractor(x.reshape(n * b, 1, *x.shape[2:])).reshape(n, -1)
        return self.net.extractor(x)

    def from_embedding(self, embedding):
        return None

    def output_names(self) -> list[str]:
        return []

    def preprocess(self, ds: LabelskyDataset):
        """A dataset's images as the pretext sees them: the pretext's bands (``bands``) or its RGB bands
        (``channel_order``), each normalised as in training."""
        from labelsky.data.transforms import select_bands

        wanted = list(self.hparams.class_names) if self.cfg.task == "bands" else self.cfg.rgb_bands(ds)
        missing = [b for b in wanted if b not in ds.bands]
        if missing:
            raise SettingsError(f"{ds.path}: band(s) {missing} of the pretext are not in this dataset's {ds.bands}")
        return Preprocess(select_bands(ds.bands, wanted), stretch=self.cfg.stretch, softening=self.cfg.softening,
                          size=self.cfg.image_size, noise=[1.0] * len(wanted))

    def configure_optimizers(self):
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.cfg.lr, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr)


def split_groups(ds: LabelskyDataset) -> np.ndarray:
    """The group of every row: its galaxy cluster (``cluster_id``) when the catalog has one, else the object."""
    return ds.column("cluster_id") if "cluster_id" in ds.catalog.column_names else ds.column("id_str")


def select_rows(datasets: dict, cfg: PretextConfig | None = None) -> dict:
    """Pretext ``train``, ``val`` and ``test`` rows of the one ``data`` dataset: whole groups, 70/10/20 %.

    Groups are galaxy clusters (``cluster_id``) when the catalog has them,
    else single objects (``id_str``), so no cluster is in two parts (every
    part gets at least one group). ``val`` picks the checkpoint; ``test`` is
    seen by neither training nor that choice. Labels are never read: the
    pretext makes its own. One part each, drawn with ``cfg.seed``.
    """
    from labelsky.utils import stable_hash

    seed = cfg.seed if cfg is not None else 0
    (ds,) = datasets["data"]
    groups = np.asarray(split_groups(ds)).astype(str)
    uniq = sorted(np.unique(groups), key=lambda g: stable_hash(seed, "pretext-split", g))
    if len(uniq) < 3:
        raise DatasetError(f"{ds.path}: {len(uniq)} cluster(s) / object(s); the pretext needs at least 3 (training, "
                           f"validation and test)")
    n_test = max(1, int(round(SPLIT_FRACTIONS["test"] * len(uniq))))
    n_val = max(1, int(round(SPLIT_FRACTIONS["val"] * len(uniq))))
    part = {g: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, g in enumerate(uniq)}
    label = np.array([part[g] for g in groups])
    return {k: [Part(ds, np.flatnonzero(label == k), None)] for k in ("train", "val", "test")}


def _check_disjoint(ds: LabelskyDataset, parts: dict) -> None:
    """No cluster (or object) in two of ``parts`` (``{name: rows}``)."""
    groups = np.asarray(split_groups(ds)).astype(str)
    seen = {name: set(groups[np.asarray(rows, dtype=np.int64)]) for name, rows in parts.items() if rows is not None}
    names = list(seen)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = seen[a] & seen[b]
            if both:
                raise SettingsError(f"{ds.path}: the pretext's {a} and {b} rows share {len(both)} cluster(s) / "
                                    f"object(s) (e.g. {sorted(both)[0]!r}); the parts must be disjoint")


def fit(run_dir, parts: dict, cfg: PretextConfig, *, overwrite: bool = False, progress: bool = True) -> Fitted:
    """Train the pretext classifier on ``parts`` (:func:`select_rows`) into ``run_dir`` (resumable); returns the
    best model (highest validation accuracy) and the report (also ``RUN/eval.json``).

    ``val`` rows pick the checkpoint; with ``test`` rows (clusters in neither
    other part) the best model's accuracy on them is written to
    ``run_dir/test.json`` (:func:`pretext_accuracy`); with ``cfg.baseline``
    the summary-statistics classifier is scored on the same split.

    The extractor's weights are also written to ``run_dir/extractor.pt`` for
    the richness network (or any band-wise model) to start from, and the
    timm backbone's alone to ``run_dir/backbone.safetensors``, a weight file any
    labelsky model of that backbone can start from (e.g. ``labelsky train
    --backbone resnet18 --weights RUN/backbone.safetensors --head-epochs 0
    --unfreeze-groups 100``: the one-band first convolution is adapted to the
    bands used, and every block trains from the first epoch, as from random
    initialisation; the head-first progressive unfreezing meant for ImageNet
    weights leaves these weaker early blocks untrained, see docs/selfsup.md).
    """
    train_part, val_part = one(parts, "train"), one(parts, "val")
    ds, train_rows, val_rows = train_part.dataset, train_part.rows, val_part.rows
    test_rows = one(parts, "test").rows if parts.get("test") else None
    run_dir = Path(run_dir)
    names = list(cfg.bands or ds.bands) if cfg.task == "bands" else ["".join(map(str, p)) for p in PERMUTATIONS]
    if cfg.task == "bands":
        missing = [b for b in names if b not in ds.bands]
        if missing:
            raise SettingsError(f"{ds.path}: band(s) {missing} are not in this dataset's {ds.bands}")
    in_chans = 1 if cfg.task == "bands" else 3
    if len(train_rows) < 1 or len(val_rows) == 0:
        raise DatasetError(f"{ds.path}: the pretext needs training and validation images "
                           f"({len(train_rows)} and {len(val_rows)} objects given)")
    _check_disjoint(ds, {"train": train_rows, "val": val_rows, "test": test_rows})
    data = {"train": describe_parts([(ds, train_rows, None)]), "val": describe_parts([(ds, val_rows, None)])}
    if test_rows is not None:
        data["test"] = describe_parts([(ds, test_rows, None)])
    run = Run.start(run_dir, method="pretext", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=[ds.path] + ([cfg.weights] if cfg.weights else []),
                    extra={"classes": names, "dataset": str(ds.path), "n_train": int(len(train_rows)),
                           "n_val": int(len(val_rows)),
                           "n_test": int(len(test_rows)) if test_rows is not None else 0})
    module = PretextModule(cfg.to_dict(), len(names), in_chans, names)
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    train_data = _dataset(ds, train_rows, cfg)
    if len(train_data) < 2:
        raise DatasetError(f"{ds.path}: the pretext needs training and validation images "
                           f"({len(train_rows)} and {len(val_rows)} objects given)")
    # order (and nuisances) a function of (seed, epoch) only: an exact resume (labelsky.methods.epochs)
    train = torch.utils.data.DataLoader(KeyedDataset(train_data), batch_size=cfg.batch_size,
                                        sampler=EpochSampler(len(train_data), cfg.seed),
                                        num_workers=cfg.num_workers, generator=g,
                                        drop_last=len(train_data) > cfg.batch_size)
    val = torch.utils.data.DataLoader(_dataset(ds, val_rows, cfg), batch_size=cfg.batch_size * 2,
                                      num_workers=cfg.num_workers)
    # selected on validation accuracy: the pretext's loss can spike on a few confidently wrong images while the
    # accuracy still climbs (seen on the cluster fields), and accuracy is what the pretext is judged by
    trainer = build_trainer(run_dir, cfg, monitor="val_acc", mode="max", patience=cfg.patience, progress=progress)
    best = PretextModule.load(run.fit(trainer, module, train, val))
    if not trainer.is_global_zero:  # a distributed run: rank 0 writes the weight files
        return Fitted(best, {})
    from labelsky.utils import atomic_path, atomic_write_json

    report = {"n_train": int(len(train_rows)), "n_val": int(len(val_rows)),
              "n_test": int(len(test_rows)) if test_rows is not None else 0}
    if test_rows is not None and len(test_rows):
        test = pretext_accuracy(best, ds, test_rows, cfg)
        atomic_write_json(run_dir / "test.json", test)
        report["test_accuracy"], report["chance"] = test["accuracy"], test["chance"]
    if cfg.baseline and cfg.task == "channel_order" and test_rows is not None and len(test_rows):
        report["stats_accuracy"] = pretext_statistics_baseline(ds, train_rows, test_rows, cfg)
        report["stats_raw_accuracy"] = pretext_statistics_baseline(ds, train_rows, test_rows, cfg, raw=True)
    if cfg.baseline and cfg.task == "bands" and test_rows is not None and len(test_rows):
        report["stats_raw_accuracy"] = statistics_baseline(ds, train_rows, test_rows, seed=cfg.seed)
        report["stats_normalised_accuracy"] = statistics_baseline(
            ds, train_rows, test_rows, Preprocess([0], noise=[1.0], stretch=cfg.stretch, softening=cfg.softening),
            seed=cfg.seed)

    with atomic_path(run_dir / "extractor.pt") as tmp:
        torch.save(best.net.extractor.state_dict(), tmp)
    from safetensors.torch import save_file

    with atomic_path(run_dir / "backbone.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in best.net.extractor.backbone.state_dict().items()}, str(tmp))
    atomic_write_json(run_dir / "eval.json", report)
    return Fitted(best, report)


def summary(run_dir: Path, report: dict) -> list[str]:
    """What ``labelsky pretrain`` prints after training."""
    lines = []
    if "test_accuracy" in report:
        lines.append(f"pretext accuracy on {report['n_test']} test object(s) (not used in training or checkpoint "
                     f"choice): {report['test_accuracy']:.3f} (chance {report['chance']:.3f})")
    if "stats_raw_accuracy" in report:
        lines.append(f"summary-statistics classifier: raw {report['stats_raw_accuracy']:.3f}, "
                     f"normalised {report['stats_normalised_accuracy']:.3f}")
    return lines + [f"run: {run_dir}; extractor weights: {Path(run_dir) / 'extractor.pt'}"]


@torch.inference_mode()
def pretext_accuracy(model: PretextModule, ds: LabelskyDataset, rows, cfg: PretextConfig | None = None,
                     batch_size: int = 256) -> dict:
    """Accuracy of ``model`` on the pretext images of ``rows`` (every band, or every permutation, of each).

    Returns ``{"accuracy", "per_class": {class: accuracy}, "n_images", "n_objects", "chance"}``.
    """
    cfg = cfg or model.cfg
    data = _dataset(ds, rows, cfg)
    names = list(model.hparams.get("class_names") or range(model.hparams["n_classes"]))
    correct = np.zeros(len(names))
    total = np.zeros(len(names))
    model.eval()
    for x, y in torch.utils.data.DataLoader(data, batch_size=batch_size):
        hit = (model(x).argmax(1) == y).numpy()
        np.add.at(correct, y.numpy(), hit)
        np.add.at(total, y.numpy(), 1)
    return {"accuracy": float(correct.sum() / max(total.sum(), 1)),
            "per_class": {str(n): float(c / t) if t else None for n, c, t in zip(names, correct, total)},
            "n_images": int(total.sum()), "n_objects": int(len(rows)), "chance": 1.0 / len(names)}


def summary_statistics(images: np.ndarray) -> np.ndarray:
    """Per-image statistics [n, 7]: mean, 1/50/99th percentiles, std, MAD noise, fraction above 5 MAD-sigma."""
    x = images.reshape(len(images), -1).astype(np.float64)
    med = np.median(x, axis=1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(x - med), axis=1, keepdims=True)
    p = np.percentile(x, [1, 50, 99], axis=1).T
    frac = ((x - med) > 5 * np.maximum(mad, 1e-30)).mean(axis=1, keepdims=True)
    return np.concatenate([x.mean(1, keepdims=True), p, x.std(1, keepdims=True), mad, frac], axis=1)


def pretext_statistics_baseline(ds: LabelskyDataset, train_rows, test_rows, cfg: PretextConfig, *,
                                raw: bool = False) -> float:
    """Test accuracy of a gradient-boosting classifier on the :func:`summary_statistics` of every channel of the
    pretext's own examples (as the network sees them; ``raw``: fluxes, no stretch): what the pretext gives away
    without any structure. With ``channel_order`` the three channels' statistics side by side (21 numbers)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    use = cfg if not raw else PretextConfig.from_dict({**cfg.to_dict(), "stretch": "none"})

    def table(rows):
        data = _dataset(ds, rows, use)
        feats, labels = [], []
        for k in range(len(data)):
            x, y = data[k]
            feats.append(summary_statistics(x.numpy()[:, None]).reshape(-1))
            labels.append(y)
        return np.asarray(feats), np.asarray(labels)

    xtr, ytr = table(train_rows)
    xte, yte = table(test_rows)
    clf = HistGradientBoostingClassifier(random_state=cfg.seed).fit(xtr, ytr)
    return float((clf.predict(xte) == yte).mean())


def statistics_baseline(ds: LabelskyDataset, train_rows, test_rows, normalise: Preprocess | None = None,
                        seed: int = 0) -> float:
    """Test accuracy of a gradient-boosting classifier on :func:`summary_statistics` for the band pretext."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def table(rows):
        feats, labels = [], []
        for r in rows:
            img = ds.image(int(r))
            for b in range(len(ds.bands)):
                x = img[[b]]
                x = normalise(x).numpy() if normalise is not None else x
                feats.append(x)
                labels.append(b)
        return summary_statistics(np.stack(feats)), np.array(labels)

    xtr, ytr = table(train_rows)
    xte, yte = table(test_rows)
    clf = HistGradientBoostingClassifier(random_state=seed).fit(xtr, ytr)
    return float((clf.predict(xte) == yte).mean())
