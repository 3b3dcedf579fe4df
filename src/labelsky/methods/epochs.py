"""Exact resume: every training epoch's randomness is a function of ``(seed, epoch)`` alone.

A run killed at an epoch boundary and resumed from its ``last.ckpt`` ends with
the same weights as a run never interrupted (on the same device and software);
a run killed mid-epoch ends like one resumed from its last boundary (its
``last.ckpt``). Lightning's checkpoint holds the weights, the optimiser and
scheduler states and the callbacks' states; what else a training epoch depends
on is made a function of the run's seed and the epoch's number, never of the
epochs before it:

* :class:`EpochSampler` draws the epoch's order from a generator seeded by
  ``(seed, epoch)`` (Lightning calls its ``set_epoch`` before every epoch, as
  it does for a ``DistributedSampler``) and hands every item a *draw key*
  ``(seed, epoch, position)``; :class:`KeyedDataset` passes it on to the
  transforms (:func:`labelsky.data.transforms.draw_key`), so that the random
  nuisances of an image follow the key — whichever loader worker, persistent
  or not, prepares it;
* :class:`EpochSeeding` seeds the global random generators (Python's
  ``random``, NumPy's and torch's: augmentation on the device, dropout) from
  ``(seed, epoch)`` when an epoch starts. In its checkpoint state it keeps the
  epoch to resume at (the samplers are set to it before Lightning creates the
  first iterator, which loader workers fill ahead) and the monitored values of
  plateau schedulers that Lightning steps only *after* the epoch's checkpoint
  was written (that step is replayed on resume, so that the learning rate
  follows the same path).
"""

from __future__ import annotations

import random
from typing import Iterable, Iterator

import lightning as L
import numpy as np
import torch

from labelsky.data.transforms import draw_key

__all__ = ["epoch_seed", "EpochSampler", "KeyedDataset", "EpochSeeding", "seed_globals"]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed of ``(seed, epoch, stream)`` (independent streams for neighbouring seeds and epochs)."""
    words = np.random.SeedSequence([int(seed) % 2 ** 63, int(epoch), int(stream)]).generate_state(2, np.uint32)
    return int((int(words[0]) << 31) ^ int(words[1]))


def seed_globals(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class EpochSampler(torch.utils.data.Sampler):
    """``num_samples`` (default ``n``) indices of ``range(n)`` per epoch: successive random permutations of all
    ``n``, cut at ``num_samples`` (no item repeats before every one was drawn), in an order that depends on
    ``(seed, epoch)`` only. Yields ``((seed, epoch, position), index)`` items for a :class:`KeyedDataset`.

    Not a ``RandomSampler``, so that under DDP Lightning shards it (keeping its length and order) instead of
    replacing it. ``set_epoch`` picks the epoch; without it, each iteration moves on to the next epoch.
    """

    def __init__(self, n: int, seed: int = 0, num_samples: int | None = None):
        self.n, self.seed, self.epoch = int(n), int(seed), 0
        self.num_samples = self.n if num_samples is None else int(num_samples)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> list[int]:
        """The indices of ``epoch``, in order."""
        if not self.n or not self.num_samples:
            return []
        g = torch.Generator()
        g.manual_seed(epoch_seed(self.seed, epoch, 1))
        reps = -(-self.num_samples // self.n)
        return torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])[:self.num_samples].tolist()

    def __iter__(self) -> Iterator[tuple]:
        epoch = self.epoch
        self.epoch += 1  # a new order next time even where nobody calls set_epoch
        return iter([((self.seed, epoch, k), i) for k, i in enumerate(self.order(epoch))])


class KeyedDataset(torch.utils.data.Dataset):
    """``base[index]`` of the ``(key, index)`` items of an :class:`EpochSampler`, prepared under the item's draw
    key (plain indices are passed through)."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item):
        if isinstance(item, tuple):
            key, index = item
            with draw_key(key):
                return self.base[index]
        return self.base[item]


def _samplers(loaders: Iterable) -> list:
    found = {}
    for loader in loaders:
        for dl in getattr(loader, "flattened", None) or [loader]:  # a CombinedLoader holds several
            for s in (getattr(dl, "sampler", None), getattr(getattr(dl, "batch_sampler", None), "sampler", None)):
                if callable(getattr(s, "set_epoch", None)):
                    found[id(s)] = s
    return list(found.values())


class EpochSeeding(L.Callback):
    """Seeds the global random generators from ``(seed, epoch)`` at the start of every training epoch, and
    keeps in the checkpoint what a resumed run needs to go on exactly (see the module docstring)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.next_epoch = 0
        self.plateau: dict[str, float] = {}
        self._replay: dict[str, float] = {}
        self._samplers: list = []

    def watch(self, *loaders) -> None:
        """The training loaders whose samplers resume at the checkpoint's epoch."""
        self._samplers = _samplers(loaders)

    @staticmethod
    def _plateau_configs(trainer):
        return [c for c in trainer.lr_scheduler_configs if c.reduce_on_plateau and c.interval == "epoch"]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        seed_globals(epoch_seed(self.seed, trainer.current_epoch))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # called before the checkpoint callbacks (Lightning calls monitoring callbacks last), and before the fit
        # loop steps the plateau schedulers with these values
        self.next_epoch = trainer.current_epoch + 1
        metrics = trainer.callback_metrics
        self.plateau = {c.monitor: float(metrics[c.monitor]) for c in self._plateau_configs(trainer)
                        if c.monitor in metrics and self.next_epoch % c.frequency == 0}

    def on_train_start(self, trainer, pl_module) -> None:
        # the optimiser and schedulers are restored by now: the plateau step the interrupted run took after its
        # checkpoint is taken again
        for c in self._plateau_configs(trainer):
            if c.monitor in self._replay:
                c.scheduler.step(self._replay[c.monitor])
        self._replay = {}

    def state_dict(self) -> dict:
        return {"seed": self.seed, "next_epoch": self.next_epoch, "plateau": dict(self.plateau)}

    def load_state_dict(self, state: dict) -> None:
        self.next_epoch = int(state.get("next_epoch", 0))
        self._replay = {str(k): float(v) for k, v in (state.get("plateau") or {}).items()}
        for s in self._samplers:  # before Lightning creates the first iterator (filled ahead by loader workers)
            s.set_epoch(self.next_epoch)
