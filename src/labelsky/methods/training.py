"""Shared training plumbing: loaders over parts, the Lightning trainer, class weights.

Loaders take *parts* (:class:`labelsky.methods.parts.Part`): several parts,
from several surveys, make one training set; each keeps its own
preprocessing (the asinh stretch uses that survey's noise), so SDSS images
and pseudo-labelled DES images can be trained on together.

A *run* is a folder (see :mod:`labelsky.methods.run`, the one run lifecycle):
``config.json``, ``checkpoints/`` (``last.ckpt`` and the best by the monitored
metric), ``logs/`` (CSV metrics per epoch), ``figures/``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from labelsky.data.datasets import ImageDataset
from labelsky.errors import SettingsError
from labelsky.methods.epochs import EpochSampler, EpochSeeding, KeyedDataset
from labelsky.utils import default_device

__all__ = ["make_loader", "build_trainer", "accelerator_for", "is_global_zero", "RankReport", "class_balance_weights",
           "AtomicCheckpointIO"]


def make_loader(parts: Sequence[tuple], cfg, shuffle: bool, batch_size: int | None = None,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader over several ``(dataset, indices, labels)`` parts (training: ``shuffle``, an
    :class:`~labelsky.methods.epochs.EpochSampler`'s order and draw keys)."""
    sets = []
    for ds, indices, labels in parts:
        pre = cfg.preprocess(ds, train=shuffle)
        targets = cfg.target_columns() if hasattr(cfg, "target_columns") else None  # e.g. vote counts
        sets.append(ImageDataset(ds, indices=np.asarray(indices), transform=pre, labels=labels,
                                 label_columns=targets))
    data = ConcatDataset(sets) if len(sets) > 1 else sets[0]
    g = torch.Generator()  # the loader's own (worker seeds): the global generators are never drawn from
    g.manual_seed(int(cfg.seed))
    bs = batch_size or cfg.batch_size
    drop_last = drop_last and len(data) > bs
    # training order and nuisances: a function of (seed, epoch) only (see labelsky.methods.epochs)
    sampler = EpochSampler(len(data), int(cfg.seed)) if shuffle else None
    return DataLoader(KeyedDataset(data) if shuffle else data, batch_size=bs, sampler=sampler, drop_last=drop_last,
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


def _atomic_checkpoint_io():
    """Lightning's checkpoint writer, made atomic (see :class:`AtomicCheckpointIO`)."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class _Atomic(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            save_atomically(checkpoint, path)

    return _Atomic()


def save_atomically(checkpoint: dict, path) -> None:
    """``torch.save`` to a temporary file beside ``path`` (the same file system), ``fsync``, then rename: a full
    disk or a kill leaves the previous checkpoint under its name, never a truncated one. A full disk is an
    ``OSError`` naming ``path`` (torch reports it as a ``RuntimeError`` of its zip writer)."""
    import os

    from labelsky.errors import disk_full
    from labelsky.utils import atomic_path

    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
    except (OSError, RuntimeError) as err:
        if disk_full(err):
            import errno

            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise


#: the checkpoint writer of every labelsky trainer (a Lightning ``CheckpointIO`` plugin)
AtomicCheckpointIO = _atomic_checkpoint_io


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
    cbs = [ckpt, last, RankReport(run_dir), EpochSeeding(int(getattr(cfg, "seed", 0) or 0)), *callbacks]
    if devices is None:
        devices = getattr(cfg, "devices", None)
    num_nodes = num_nodes or int(getattr(cfg, "num_nodes", 1) or 1)
    strategy = strategy or getattr(cfg, "strategy", None) or "auto"
    if strategy == "ddp":
        strategy = _ddp_strategy()
    if patience:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    from lightning.fabric.utilities.exceptions import MisconfigurationException


    try:
        return L.Trainer(
            default_root_dir=run_dir, max_epochs=max_epochs or cfg.max_epochs, callbacks=cbs,
            logger=CSVLogger(run_dir, name="logs"),  # logs/version_N per (re)start
            accelerator=accelerator_for(cfg.device),
            devices=devices if devices is not None else devices_for(cfg.device), num_nodes=num_nodes,
            strategy=strategy, enable_progress_bar=progress, plugins=[AtomicCheckpointIO()],
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
