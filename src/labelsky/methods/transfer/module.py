"""Transfer learning with progressive unfreezing (Khan et al. 2019).

A timm backbone (pretrained weights from a local file or timm) with the
paper's head (1024-wide dense layer, dropout 0.7, softmax) is trained in
stages: first the head alone on the frozen backbone ("bottleneck features"),
then progressively earlier blocks of the backbone are unfrozen and fine-tuned
at a lower learning rate. Adam, cross-entropy, early stopping on the
validation loss, learning-rate reduction on plateau, and batch augmentation
(rotations up to 45 deg, flips, shifts, zooms up to 1.3).

Every parameter group exists from the first step (frozen ones simply have
``requires_grad=False``), so a run resumes from its last checkpoint with the
optimizer state intact.
"""

from __future__ import annotations

import logging
from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from labelsky.data.transforms import BatchAugment
from labelsky.methods.base import LabelskyModule
from labelsky.methods.transfer.config import TransferConfig
from labelsky.models.backbones import backbone_blocks, create_backbone
from labelsky.models.heads import Classifier

__all__ = ["TransferClassifier", "ProgressiveUnfreezing", "unfrozen_groups"]

log = logging.getLogger(__name__)


def unfrozen_groups(epoch: int, n_groups: int, head_epochs: int, every: int, per_step: int) -> int:
    """How many backbone groups (counted from the output end) train at ``epoch``.

    Epochs ``[0, head_epochs)`` train the head alone (0 groups); then
    ``per_step`` more groups every ``every`` epochs, up to all of them.
    """
    if epoch < head_epochs:
        return 0
    steps = (epoch - head_epochs) // max(every, 1) + 1
    return int(min(n_groups, steps * per_step))


class TransferClassifier(LabelskyModule):
    """Backbone + head classifier trained with progressive unfreezing."""

    config_cls = TransferConfig
    output = "probs"

    def __init__(self, config: dict, n_classes: int, in_chans: int, class_names: Sequence[str] = (),
                 class_weights: Sequence[float] | None = None):
        super().__init__(config)
        self.save_hyperparameters()
        backbone, self.weights_info = create_backbone(self.cfg.backbone, in_chans, self._weights_arg())
        self.model = Classifier(backbone, n_classes, self.cfg.hidden, self.cfg.dropout)
        self.groups = backbone_blocks(self.model.backbone)
        self.augment = BatchAugment(self.cfg.max_rotation, self.cfg.max_shift, self.cfg.max_zoom) \
            if self.cfg.augment else None
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32)
                             if class_weights is not None else torch.ones(n_classes))
        # a vote head: every question's answers, the summed per-question Dirichlet-multinomial likelihood
        self.vote_slices = None
        if self.cfg.questions != "classes":
            from labelsky.data.vote_trees import get_tree

            self.output = "fractions"
            self.vote_slices = [slice(0, 3)] if self.cfg.questions == "first" else \
                get_tree(self.cfg.questions).slices()
        self.set_unfrozen(0)

    def _weights_arg(self):
        w = self.cfg.weights
        if w in (None, "", "none"):
            return None
        return True if w == "timm" else w

    # -------------------------------------------------------------- freezing
    def set_unfrozen(self, k: int) -> None:
        """Train the last ``k`` backbone groups; freeze the others."""
        n = len(self.groups)
        for i, params in enumerate(self.groups):
            for p in params:
                p.requires_grad_(i >= n - k)
        self._n_unfrozen = k

    def _freeze_bn_of_frozen(self) -> None:
        """Batch norms of frozen blocks keep their statistics (eval mode); trainable ones update them."""
        for m in self.model.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                params = list(m.parameters(recurse=False))
                m.train(self.training and (not params or any(p.requires_grad for p in params)))

    def on_train_epoch_start(self) -> None:
        self._freeze_bn_of_frozen()

    # -------------------------------------------------------------- steps
    def forward(self, x):
        return self.model(x)

    def _loss(self, logits, y):
        if self.vote_slices is not None:  # y: vote counts [n, answers]
            from labelsky.methods.semisup.tree_loss import tree_vote_nll

            return tree_vote_nll(logits, y.float(), self.vote_slices, "dirichlet_multinomial")
        return F.cross_entropy(logits, y, weight=self.class_weights)

    def _score(self, logits, y):
        """``(name, value)``: accuracy of class labels, or the RMSE of the first question's vote fractions."""
        if self.vote_slices is not None:
            from labelsky.measures.metrics import vote_rmse

            return "rmse", torch.tensor(vote_rmse(self._outputs(logits)[:, :3].detach(), y[:, :3]))
        return "acc", (logits.argmax(1) == y).float().mean()

    def _outputs(self, logits):
        if self.vote_slices is not None:
            from labelsky.methods.semisup.tree_loss import tree_fractions

            return tree_fractions(logits, self.vote_slices, "dirichlet_multinomial")
        return torch.softmax(logits, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        logits = self(x)
        loss = self._loss(logits, y)
        name, score = self._score(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log(f"train_{name}", score, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        name, score = self._score(logits, y)
        self.log(f"val_{name}", score, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)

    def embed(self, x):
        return self.model.embed(x)

    def from_embedding(self, embedding):
        return self._outputs(self.model.head.out(embedding))

    def configure_optimizers(self):
        cfg = self.cfg
        groups = [{"params": list(self.model.head.parameters()), "lr": cfg.lr, "name": "head"}]
        for i, params in enumerate(self.groups):
            groups.append({"params": params, "lr": cfg.lr * cfg.backbone_lr_factor, "name": f"backbone_{i}"})
        opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                           patience=cfg.plateau_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "train_loss"}}


class ProgressiveUnfreezing(L.Callback):
    """Unfreezes backbone groups from the output end on the schedule of :func:`unfrozen_groups`.

    Logs every change; the state is a function of the epoch, so resuming a
    run restores it exactly.
    """

    def __init__(self, head_epochs: int = 2, every: int = 2, per_step: int = 1, verbose: bool = False):
        self.head_epochs, self.every, self.per_step, self.verbose = head_epochs, every, per_step, verbose
        self.history: list[tuple[int, int]] = []

    def on_train_epoch_start(self, trainer, pl_module: TransferClassifier) -> None:
        epoch, n = trainer.current_epoch, len(pl_module.groups)
        k = unfrozen_groups(epoch, n, self.head_epochs, self.every, self.per_step)
        k_prev = unfrozen_groups(epoch - 1, n, self.head_epochs, self.every, self.per_step) if epoch > 0 else 0
        pl_module.set_unfrozen(k)
        if k > k_prev or epoch == 0:
            optimizers = getattr(trainer, "optimizers", None)
            if optimizers and k > k_prev:
                # groups unfrozen now join at the head's current rate x backbone_lr_factor (the plateau
                # schedule may have lowered the head's rate while they were frozen)
                opt = optimizers[0]
                for i in range(n - k, n - k_prev):
                    opt.param_groups[1 + i]["lr"] = opt.param_groups[0]["lr"] * pl_module.cfg.backbone_lr_factor
            self.history.append((epoch, k))
            if self.verbose:
                log.info(f"epoch {epoch}: training head + last {k}/{n} backbone groups")
        if pl_module._trainer is not None:
            pl_module.log("unfrozen_groups", float(k), on_epoch=True, sync_dist=True)
        pl_module._freeze_bn_of_frozen()
