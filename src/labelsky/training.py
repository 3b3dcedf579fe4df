"""Shared training plumbing: data parts, loaders, Lightning trainer, prediction.

A *part* is ``(dataset, indices, labels)``: rows of a labelsky dataset with
their labels (``None`` takes the catalog's ``label``). Several parts, from
several surveys, make one training set; each keeps its own preprocessing
(the asinh stretch uses that survey's noise), so SDSS images and pseudo-labelled
DES images can be trained on together.

A *run* is a folder (see :mod:`labelsky.methods.run`, the one run lifecycle):
``config.json``, ``checkpoints/`` (``last.ckpt`` and the best by the monitored
metric), ``logs/`` (CSV metrics per epoch), ``figures/``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from labelsky.errors import SettingsError
from labelsky.data.datasets import ImageDataset
from labelsky.data.io import LabelskyDataset
from labelsky.data.transforms import Preprocess, select_bands
from labelsky.utils import default_device

__all__ = ["InputSettings", "make_preprocess", "make_loader", "build_trainer", "predict", "accelerator_for",
           "is_global_zero", "RankReport", "class_balance_weights"]


@dataclass
class InputSettings:
    """Settings every method shares: which bands, how flux is stretched, image size, seed, device, loaders."""

    bands: list | None = None  # band names to use (default: all of the dataset's)
    stretch: str = "asinh"
    softening: float = 3.0
    # None: each dataset's asinh softening follows its own survey's noise (the same S/N contrast everywhere);
    # a survey name: that survey's noise for every dataset (one fixed flux stretch, as images stretched once)
    noise_survey: str | None = None
    image_size: int | None = None
    mask_channel: bool = False  # append a bad-pixel channel (imported data with masked pixels)
    # render flux images as this survey viewer shows them (labelsky.data.display.RENDERERS): the model then takes
    # 8-bit RGB pictures (Galaxy Zoo, Galaxy10, viewer JPEG cutouts) as they are
    render: str | None = None
    jpeg_quality: int | None = None  # JPEG-compress rendered pictures at this quality
    # nuisance randomisation of rendered training images (NuisanceRandomisation fields; {} = its defaults)
    randomise: dict | None = None
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    # training across devices and nodes (Lightning): devices per node (None: one; an int, or "auto" for all
    # GPUs), nodes, and strategy ("ddp" for data-parallel; CPU processes talk over gloo, GPUs over NCCL)
    devices: int | str | None = None
    num_nodes: int = 1
    strategy: str = "auto"

    def preprocess(self, ds: LabelskyDataset, train: bool = False):
        """The preprocessing of ``ds`` images under these settings (``train``: with the training randomisation)."""
        return make_preprocess(ds, self.bands, self.stretch, self.softening, self.image_size, self.noise_survey,
                               self.mask_channel, render=getattr(self, "render", None),
                               jpeg_quality=getattr(self, "jpeg_quality", None),
                               randomise=getattr(self, "randomise", None) if train else None,
                               seed=self.seed)

    def in_chans(self, ds: LabelskyDataset | None = None) -> int:
        """Input channels of a model: the bands used (all of ``ds``'s by default; 3 when rendered), plus the
        mask channel."""
        if getattr(self, "render", None):
            return 3
        n = len(self.bands) if self.bands else len(ds.bands)
        return n + int(self.mask_channel)


def make_preprocess(ds: LabelskyDataset, bands=None, stretch="asinh", softening=3.0, size=None,
                    noise_survey: str | None = None, mask_channel: bool = False, *, render: str | None = None,
                    jpeg_quality: int | None = None, randomise: dict | None = None, seed: int = 0):
    """The preprocessing of ``ds`` images: band selection by name, survey-noise asinh stretch, resize.

    ``noise_survey`` names the survey whose pixel noise sets the asinh
    softening of every band (default: the dataset's own survey). Datasets of
    8-bit colour pictures (``flux_unit`` "display": Galaxy10, JPEG cutouts)
    are already stretched: ``asinh`` leaves them as they are (0-1).

    With ``render`` (a renderer of :data:`labelsky.data.display.RENDERERS`),
    flux images become the RGB picture that survey's viewer would show
    (:class:`~labelsky.data.transforms.RenderPreprocess`, optionally
    JPEG-compressed and, with ``randomise``, with random nuisances), and
    8-bit RGB pictures are taken as they are: both give the same input.
    """
    if render:
        from labelsky.data.transforms import NuisanceRandomisation, RenderPreprocess

        if mask_channel:
            raise SettingsError("--mask-channel cannot be combined with --render (a rendered picture has no "
                                "bad-pixel channel)")
        if ds.meta.get("flux_unit", "nanomaggy") == "display":
            if len(ds.bands) != 3:
                raise SettingsError(f"{ds.path}: {len(ds.bands)}-channel pictures; a model on rendered pictures "
                                    f"takes 3-channel RGB pictures")
            return Preprocess([0, 1, 2], stretch="none", size=size, fill="median")  # off-image pixels: sky
        scales = (ds.column("pixel_scale") if "pixel_scale" in ds.catalog.column_names
                  else ds.survey.pixel_scale)
        rand = NuisanceRandomisation(**{k: tuple(v) if isinstance(v, list) else v for k, v in randomise.items()}) \
            if randomise is not None else None
        import zlib

        return RenderPreprocess(ds.bands, render, pixel_scale=scales, noise=ds.survey, jpeg_quality=jpeg_quality,
                                randomise=rand, size=size, seed=seed, salt=zlib.crc32(str(ds.path).encode()))
    idx = select_bands(ds.bands, bands)
    if stretch == "asinh" and ds.meta.get("flux_unit", "nanomaggy") != "nanomaggy":
        return Preprocess(idx, stretch="none", size=size, mask_channel=mask_channel)
    if noise_survey is None:
        noise = [ds.survey.noise_sigma(b) for b in range(len(ds.bands))]
    else:
        from labelsky.data.surveys import get_survey

        ref = get_survey(noise_survey)
        missing = [b for b in ds.bands if b not in ref.bands]
        if missing and stretch == "asinh":
            raise SettingsError(f"noise_survey {ref.name!r} has no band(s) {missing} of {ds.path}")
        noise = [ref.noise_sigma(b) if b in ref.bands else 1.0 for b in ds.bands]
    return Preprocess(idx, noise=noise, stretch=stretch, softening=softening, size=size, mask_channel=mask_channel)


def make_loader(parts: Sequence[tuple], cfg, shuffle: bool, batch_size: int | None = None,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader over several ``(dataset, indices, labels)`` parts."""
    sets = []
    for ds, indices, labels in parts:
        pre = cfg.preprocess(ds, train=shuffle) if isinstance(cfg, InputSettings) else cfg.preprocess(ds)
        sets.append(ImageDataset(ds, indices=np.asarray(indices), transform=pre, labels=labels))
    data = ConcatDataset(sets) if len(sets) > 1 else sets[0]
    g = torch.Generator()
    g.manual_seed(int(cfg.seed))
    bs = batch_size or cfg.batch_size
    drop_last = drop_last and len(data) > bs
    return DataLoader(data, batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                      num_workers=cfg.num_workers, generator=g, persistent_workers=cfg.num_workers > 0,
                      pin_memory=torch.cuda.is_available())


def accelerator_for(device: str | None) -> str:
    dev = default_device(None if device in (None, "auto") else device)
    return {"cuda": "gpu", "cpu": "cpu", "mps": "mps"}.get(dev.split(":")[0], "auto")


def devices_for(device: str | None):
    """Lightning ``devices``: one device by default (``cuda:N`` picks GPU N); multi-device runs ask explicitly."""
    dev = default_device(None if device in (None, "auto") else device)
    if dev.startswith("cuda:"):
        return [int(dev.split(":")[1])]
    return 1


def is_global_zero() -> bool:
    """Whether this process is rank 0 of a (possibly) distributed run: the one that writes run outputs."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


class RankReport(L.Callback):
    """With several processes, each writes ``run/ranks/rank-N.json`` at the end of fit: a checksum of its
    weights and its synchronised metrics, so that agreement between the processes can be checked."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def on_fit_end(self, trainer, pl_module):
        if trainer.world_size <= 1:
            return
        import hashlib

        from labelsky.utils import atomic_write_json

        def digest(named) -> str:
            h = hashlib.sha256()
            for name, t in sorted(named):
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            return h.hexdigest()

        # parameters stay identical under DDP (same start, averaged gradients); buffers such as batch-norm
        # running statistics are updated by each process's own last batches, so they are reported apart
        atomic_write_json(self.run_dir / "ranks" / f"rank-{trainer.global_rank}.json", {
            "global_rank": trainer.global_rank, "world_size": trainer.world_size,
            "parameters_sha256": digest(pl_module.named_parameters()),
            "buffers_sha256": digest(pl_module.named_buffers()),
            "global_step": trainer.global_step,
            "metrics": {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}})


def _ddp_strategy():
    """Lightning's DDP, registering every parameter (also those frozen when training starts) and tolerating
    parameters unused in a step: progressive unfreezing turns frozen blocks on later (their gradients must be
    averaged too), and the semi-supervised and adaptation steps use different parts of the network."""
    from lightning.pytorch.strategies import DDPStrategy

    class _DDP(DDPStrategy):
        def configure_ddp(self) -> None:
            frozen = [p for p in self.model.parameters() if not p.requires_grad]
            for p in frozen:
                p.requires_grad_(True)
            try:
                super().configure_ddp()
            finally:
                for p in frozen:
                    p.requires_grad_(False)

    return _DDP(find_unused_parameters=True)


def build_trainer(run_dir: Path, cfg, callbacks=(), monitor: str = "val_loss", mode: str = "min",
                  patience: int | None = None, max_epochs: int | None = None, progress: bool = True,
                  devices=None, num_nodes: int | None = None, strategy=None) -> L.Trainer:
    """A Lightning trainer writing checkpoints and CSV logs into ``run_dir``.

    ``devices`` / ``num_nodes`` / ``strategy`` default to the config's (see
    :class:`InputSettings`); with several processes, metrics logged with
    ``sync_dist`` are averaged over them and each writes a :class:`RankReport`.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    for pattern in (r".*isinstance\(treespec, LeafSpec\).*",  # inside Lightning itself
                    r".*smaller than the logging interval.*",  # small data sets: logged per epoch anyway
                    r".*Checkpoint directory .* exists and is not empty.*"):  # expected when a run resumes
        warnings.filterwarnings("ignore", message=pattern)

    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                           save_top_k=1)
    # last.ckpt after every epoch, whether or not it was the best (Lightning's save_last copies only when the best
    # changes, so a resumed run would repeat epochs): an interrupted run resumes where it stopped
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           every_n_epochs=1, enable_version_counter=False)
    cbs = [ckpt, last, RankReport(run_dir), *callbacks]
    if devices is None:
        devices = getattr(cfg, "devices", None)
    num_nodes = num_nodes or int(getattr(cfg, "num_nodes", 1) or 1)
    strategy = strategy or getattr(cfg, "strategy", None) or "auto"
    if strategy == "ddp":
        strategy = _ddp_strategy()
    if patience:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from labelsky.errors import SettingsError

    try:
        return L.Trainer(
            default_root_dir=run_dir, max_epochs=max_epochs or cfg.max_epochs, callbacks=cbs,
            logger=CSVLogger(run_dir, name="logs"),  # logs/version_N per (re)start
            accelerator=accelerator_for(cfg.device),
            devices=devices if devices is not None else devices_for(cfg.device), num_nodes=num_nodes,
            strategy=strategy, enable_progress_bar=progress,
            enable_model_summary=False, log_every_n_steps=10, deterministic=False,
        )
    except (ValueError, MisconfigurationException) as err:  # an unknown strategy, too many devices, ...
        raise SettingsError(f"training settings (--devices / --num-nodes / --strategy / --device): {err}") \
            from None


def class_balance_weights(labels, n_classes: int) -> list[float]:
    """``w_k = N / (K n_k)`` over the labelled (``>= 0``) examples; 0 for a class without examples.

    (A class without examples never is a target, so its weight never enters a
    weighted cross-entropy; 0 says so.)
    """
    labels = np.asarray(labels)
    labels = labels[labels >= 0]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return [float(x) for x in w]


@torch.inference_mode()
def predict(model: torch.nn.Module, ds: LabelskyDataset, indices, cfg, batch_size: int = 256,
            device: str | None = None, embed: bool = True) -> dict:
    """Class probabilities (and embeddings) of rows ``indices`` of ``ds``, in batches."""
    dev = torch.device(default_device(None if (device or cfg.device) in (None, "auto") else (device or cfg.device)))
    model = model.to(dev).eval()
    pre = cfg.preprocess(ds)
    loader = DataLoader(ImageDataset(ds, indices=np.asarray(indices), transform=pre), batch_size=batch_size,
                        shuffle=False, num_workers=cfg.num_workers)
    probs, embs = [], []
    for x, _ in loader:
        out = model.predict_step(x.to(dev), 0)
        probs.append(out["probs"].float().cpu().numpy())
        if embed:
            embs.append(out["embedding"].float().cpu().numpy())
    n_classes = len(getattr(model.hparams, "class_names", ())) or int(getattr(model.hparams, "n_classes", 0))
    res = {"probs": np.concatenate(probs) if probs else np.zeros((0, n_classes), np.float32)}
    if embed:
        res["embedding"] = np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)
    return res
