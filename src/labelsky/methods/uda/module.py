"""Universal domain adaptation as a Lightning module: DeepAstroUDA, DANCE, source-only.

One module, three ``method`` settings, trained on identical data and augmentation:

``deepastrouda``  L = L_CE + lambda (L_AC + L_AC,source) + lambda_ES L_ES (paper eq. 5 with lambda =
                  0.005; see below for lambda_ES). Every source and target image comes with two
                  transformed views (90 deg rotation; zoom by 300/256 then crop back, as the
                  paper). L_AC (eq. 1) compares every target image and view (queries) with the
                  source *and* target rows of the memory bank of *earlier* batches; a pair is
                  labelled similar by ``pair_rule`` (:func:`.losses.pair_labels`: ``confident``,
                  the default, or the paper's ``ordered`` top-k, ``unordered``, ``features``).
                  L_AC,source (term ``acs``, ``source_pairs``) compares every source image and view
                  with the bank's source rows by class label: it is extra supervision, which a
                  baseline can be given too (``source_pairs=True``). The entropy separation acts
                  on the un-augmented target images; its boundary and margin follow the active
                  tuner (:mod:`.tuner`). With eq. 1 summed over the bank, eq. 3's batch mean is
                  ~0.1 % of the gradient at the paper's single lambda, so entropy separation gets
                  DANCE's weight lambda_ES = 0.05 (the paper takes this loss from DANCE);
                  ``grad_share_*`` shows what each term does. With ``pair_diagnostics`` and a
                  target with class names, the precision and recall of every pair rule's labels
                  are logged per epoch (``pairs_<rule>_<tt|ts>_<known|unknown>_*``).
``dance``         L = L_CE + eta (L_NC + L_ES), eta = 0.05 (Saito et al. 2020): neighbourhood
                  clustering over the class prototypes, the target memory bank and the other
                  samples of the batch; fixed rho = log(K)/2 and the same initial margin as
                  DeepAstroUDA (DANCE's m = 0.5 was set for 10-20 classes; at K = 2 it would
                  switch entropy separation off).
``source_only``   L = L_CE ("regular training").

``ac=False`` / ``es=False`` drop the adaptation / entropy-separation term (ablations), ``ac_cross=False``
L_AC's target-source pairs, ``source_pairs=False`` the source pairs' term; ``dsbn``
switches domain-specific batch norm (source = domain 0, target = domain 1) on or off for any
method except source-only (default: on for deepastrouda, off for dance, as published). All
methods train the cross-entropy on the source images *and* their two views (``views``), so a
baseline sees the same augmentation as the method.

Shared choices (DANCE's, where the DeepAstroUDA paper is silent): cosine classifier on
L2-normalised backbone features with temperature 0.05; a memory bank with one slot per source
and target sample (normalised features, probabilities, labels), overwritten on update.
Optimiser: SGD with Nesterov momentum 0.9, lr 1e-3, step decay x0.1 every ``step_epochs``
epochs. Model selection and early stopping use the *source* validation accuracy: target labels
are unknown during training.

Every ``grad_log_every`` steps the gradient norm of each weighted loss term with respect to the
network parameters is measured and logged (``grad_norm_<term>``, ``grad_share_<term>`` = its
share of the sum of the norms): a term that does nothing shows as a share near zero.

A target sample is predicted "unknown" when the entropy of its class probabilities exceeds
the boundary rho.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelsky.methods.base import LabelskyModule
from labelsky.methods.epochs import EpochSampler, KeyedDataset
from labelsky.methods.uda.config import METHODS, UDAConfig
from labelsky.methods.uda.losses import (
    PAIR_RULES,
    MemoryBank,
    adaptive_clustering_loss,
    entropy,
    entropy_separation_loss,
    neighbourhood_clustering_loss,
    pair_labels,
    weighted_cross_entropy,
)
from labelsky.methods.uda.tuner import EntropyTuner
from labelsky.models.backbones import create_backbone
from labelsky.models.dsbn import convert_to_domain_bn, set_domain

__all__ = ["UDAConfig", "UDAModule", "METHODS", "TunerCallback", "uda_loaders", "IndexedDataset"]

log = logging.getLogger(__name__)

BANK_FIELDS = ("features", "probs", "labels", "filled")  # the memory bank in a checkpoint



def _zoom_crop(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom by ``zoom`` (bilinear) and crop the centre back to the input size."""
    h, w = x.shape[-2:]
    big = F.interpolate(x, scale_factor=zoom, mode="bilinear", align_corners=False)
    top, left = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
    return big[..., top:top + h, left:left + w]


class UDAModule(LabelskyModule):
    """Backbone (+ domain-specific BN) and cosine classifier, trained with a universal-DA method."""

    config_cls = UDAConfig
    output = "probs"

    def __init__(self, config: dict, n_classes: int, in_chans: int, n_source: int, n_target: int,
                 class_names: Sequence[str] = (), class_weights: Sequence[float] | None = None):
        super().__init__(config)
        self.save_hyperparameters()
        self.n_classes, self.n_source = n_classes, n_source
        self.backbone, self.weights_info = create_backbone(self.cfg.backbone, in_chans, self.cfg.weights or None)
        if self.cfg.dsbn:
            convert_to_domain_bn(self.backbone, 2)
        self.classifier = nn.Linear(self.backbone.num_features, n_classes, bias=False)
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32)
                             if class_weights is not None else torch.ones(n_classes))
        self.bank = MemoryBank(n_source + n_target, self.backbone.num_features, n_classes)
        self.k_rank = self.cfg.k_rank or (3 if n_classes <= 5 else 7)
        self.tuner = EntropyTuner(n_classes, self.cfg.margin, self.cfg.rho)
        self.target_truth = None  # pair-label diagnostics only (set_pair_truth)
        self._pairs = {}

    # ------------------------------------------------------------------ model
    def features(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        if self.cfg.dsbn:
            set_domain(self.backbone, domain)
        return self.backbone(x)

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(f, dim=1) @ F.normalize(self.classifier.weight, dim=1).T / self.cfg.temperature

    def forward(self, x: torch.Tensor, domain: int = 1) -> torch.Tensor:
        return self.logits(self.features(x, domain))

    @property
    def rho(self) -> float:
        return float(self.tuner.rho)

    # ------------------------------------------------------------------ training
    def _views(self, x: torch.Tensor) -> list:
        """The image and, with ``views``, its two transformed versions (paper section 2.2)."""
        if not self.cfg.views:
            return [x]
        return [x, torch.rot90(x, 1, dims=(2, 3)), _zoom_crop(x, self.cfg.zoom)]

    def loss_terms(self, batch) -> dict:
        """The weighted loss terms of one step (``{"ce", "ac"/"nc", "acs", "es"}``, as the settings switch them on);
        updates the bank (and, with pair diagnostics, the pair counts)."""
        (xs, ys, is_), (xt, _, it) = batch["source"], batch["target"]
        c, method = self.cfg, self.cfg.method
        n_s, n_t = len(xs), len(xt)
        vs = self._views(xs)
        fs_all = self.features(torch.cat(vs), 0)
        ls_all = self.logits(fs_all)
        ys_all = ys.repeat(len(vs))
        terms = {"ce": weighted_cross_entropy(ls_all, ys_all, self.class_weights)}
        ps_all = F.softmax(ls_all, dim=1)
        t_slots = self.n_source + it
        current = torch.cat([is_, t_slots])  # the references are the bank of *earlier* batches
        if method == "deepastrouda":
            vt = self._views(xt)
            ft_all = self.features(torch.cat(vt), 1)
            pt_all = F.softmax(self.logits(ft_all), dim=1)
            ft, pt = ft_all[:n_t], pt_all[:n_t]  # the un-augmented target images
            if c.ac:  # queries: every target image and view; references: source and target rows (eq. 1)
                bank_f, bank_p, bank_y, _ = self.bank.entries(exclude=current, target_only=not c.ac_cross)
                s_t, counted = pair_labels(c.pair_rule, bank_probs=bank_p, query_probs=pt_all.detach(),
                                           k=self.k_rank, bank_features=bank_f, query_features=ft_all.detach(),
                                           bank_labels=bank_y, gate=self.pair_gate)
                terms["ac"] = c.lam * adaptive_clustering_loss(pt_all, bank_p, s_t, c.ac_balanced, counted)
            if c.es:
                terms["es"] = c.lam_es * entropy_separation_loss(pt, self.tuner.rho, self.tuner.m)
            self._count_pairs(pt_all.detach(), ft_all.detach(), it.repeat(len(vt)), current)
        elif method == "dance":
            ft = self.features(xt, 1)
            pt = F.softmax(self.logits(ft), dim=1)
            if c.ac:
                bank_f = self.bank.entries(exclude=t_slots, target_only=True)[0]
                terms["nc"] = c.eta * neighbourhood_clustering_loss(ft, bank_f, self.classifier.weight,
                                                                    c.temperature)
            if c.es:
                terms["es"] = c.eta * entropy_separation_loss(pt, self.tuner.rho, self.tuner.m)
            self._count_pairs(pt.detach(), ft.detach(), it, current)
        if c.source_pairs:  # source images and views against the bank's source rows, by label (section 2.2)
            _, bank_p, bank_y, _ = self.bank.entries(exclude=current, labelled_only=True)
            s_s = (bank_y[:, None] == ys_all[None, :]).float()
            terms["acs"] = c.lam * adaptive_clustering_loss(ps_all, bank_p, s_s, c.ac_balanced)
        if method != "source_only":
            self.bank.update(t_slots, ft, pt)
            with torch.no_grad():
                self._target_entropy = float(entropy(pt).mean())
        self.bank.update(is_, fs_all[:n_s], ps_all[:n_s], ys)
        self._source_acc = (ls_all[:n_s].argmax(1) == ys).float().mean()
        return terms

    @property
    def pair_gate(self) -> float:
        """The entropy below which the ``confident`` pair rule counts a galaxy as sure of its class: the open-set
        boundary rho (the galaxies the model calls known; an unknown-side galaxy is in no counted pair)."""
        return float(self.tuner.rho)

    # ------------------------------------------------------------------ pair-label diagnostics
    def set_pair_truth(self, labels) -> None:
        """The open-set class (known index, K for unknown, -1 for none) of every target training slot, for
        :meth:`pair_counts` only: the similarity labels of every pair rule are then counted against it each
        step. Never used by a loss."""
        self.target_truth = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self._pairs = {}

    @torch.no_grad()
    def _count_pairs(self, q_probs, q_feats, q_slots, current) -> None:
        truth = getattr(self, "target_truth", None)
        if truth is None:
            return
        truth = truth.to(q_probs.device)
        bank_f, bank_p, bank_y, idx = self.bank.entries(exclude=current)
        is_target_row = bank_y < 0
        row_truth = torch.where(is_target_row, truth[(idx - self.n_source).clamp_min(0)], bank_y)
        q_truth = truth[q_slots]
        true = (row_truth[:, None] == q_truth[None, :]) & (row_truth[:, None] >= 0) & (q_truth[None, :] >= 0)
        valid = (row_truth[:, None] >= 0) & (q_truth[None, :] >= 0)
        for rule in PAIR_RULES:
            s, counted = pair_labels(rule, bank_probs=bank_p, query_probs=q_probs, k=self.k_rank,
                                     bank_features=bank_f, query_features=q_feats, bank_labels=bank_y,
                                     gate=self.pair_gate)
            s, counted = s > 0, (counted > 0) & valid
            for group, rows in (("tt", is_target_row), ("ts", ~is_target_row)):
                for kind, queries in (("known", q_truth < self.n_classes), ("unknown", q_truth == self.n_classes)):
                    m = rows[:, None] & queries[None, :] & valid
                    c = m & counted
                    acc = self._pairs.setdefault((rule, group, kind), [0.0] * 5)
                    for j, v in enumerate(((s & true & c).sum(), (s & ~true & c).sum(), (~s & true & c).sum(),
                                           c.sum(), m.sum())):
                        acc[j] += float(v)

    def pair_counts(self) -> dict:
        """Precision, recall, coverage (share of the pairs a rule counts) and similar rate (share of the counted
        pairs labelled similar) of every pair rule since the last call, by pair group (``tt``: target query and
        target row; ``ts``: target query and source row) and query kind (``known`` / ``unknown`` class):
        ``{"pairs_<rule>_<group>_<kind>_<measure>": value}``; resets the counts."""
        out = {}
        for (rule, group, kind), (tp, fp, fn, counted, total) in getattr(self, "_pairs", {}).items():
            name = f"pairs_{rule}_{group}_{kind}"
            if tp + fp:
                out[f"{name}_precision"] = tp / (tp + fp)
            if tp + fn:
                out[f"{name}_recall"] = tp / (tp + fn)
            if total:
                out[f"{name}_coverage"] = counted / total
            if counted:
                out[f"{name}_similar_rate"] = (tp + fp) / counted
        self._pairs = {}
        return out

    def gradient_norms(self, terms: dict) -> dict:
        """L2 norm of the gradient of every loss term with respect to the trainable parameters."""
        params = [p for p in self.parameters() if p.requires_grad]
        norms = {}
        for name, t in terms.items():
            if not t.requires_grad:
                norms[name] = 0.0
                continue
            grads = torch.autograd.grad(t, params, retain_graph=True, allow_unused=True)
            norms[name] = float(torch.sqrt(sum((g.detach().float() ** 2).sum() for g in grads if g is not None)))
        return norms

    def training_step(self, batch, batch_idx):
        terms = self.loss_terms(batch)
        loss = sum(terms.values())
        n = len(batch["source"][1])
        every = self.cfg.grad_log_every
        # single-process runs only: extra backward passes on DDP-wrapped parameters could fire its reducer
        world = self._trainer.world_size if self._trainer is not None else 1
        if every and batch_idx % every == 0 and torch.is_grad_enabled() and world == 1:
            norms = self.gradient_norms(terms)
            total = sum(norms.values()) or 1.0
            for name, v in norms.items():
                self.log(f"grad_norm_{name}", v, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
                self.log(f"grad_share_{name}", v / total, on_step=False, on_epoch=True, batch_size=n,
                         sync_dist=True)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train_source_acc", self._source_acc, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        if self.cfg.method != "source_only":
            self.log("target_entropy", self._target_entropy, on_step=False, on_epoch=True, batch_size=n,
                     sync_dist=True)
        for k, v in terms.items():
            self.log(f"loss_{k}", v, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss

    def on_fit_start(self):
        self.bank.to(self.device)

    def on_train_epoch_start(self):
        self._pairs = {}

    def on_train_epoch_end(self):
        for name, v in self.pair_counts().items():
            self.log(name, v)

    def on_validation_epoch_start(self):
        self._val = {}

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        """Dataloader 0: source validation (known classes); 1 (optional): labelled target, logged only."""
        x, y, _ = batch
        domain = 0 if dataloader_idx == 0 else 1
        p = F.softmax(self(x, domain), dim=1)
        name = "source" if domain == 0 else "target"
        known = (y >= 0) & (y < self.n_classes)
        if known.any():  # closed-set accuracy on the known classes: the model-selection metric for the source
            acc = (p[known].argmax(1) == y[known]).float().mean()
            self.log(f"val_{name}_acc", acc, on_epoch=True, prog_bar=True, batch_size=int(known.sum()),
                     add_dataloader_idx=False, sync_dist=True)
        pred = p.argmax(1)
        pred[entropy(p) > self.tuner.rho] = self.n_classes  # open set: "unknown" above the boundary
        store = self._val.setdefault(name, ([], []))
        store[0].append(y.detach().cpu())
        store[1].append(pred.detach().cpu())

    def on_validation_epoch_end(self):
        """Open-set accuracy and per-class accuracy (unknown = class K) of every validation domain."""
        names = list(self.hparams.class_names or [str(k) for k in range(self.n_classes)]) + ["unknown"]
        for name, (ys, preds) in getattr(self, "_val", {}).items():
            y, pred = torch.cat(ys), torch.cat(preds)
            y = torch.where(y < 0, torch.full_like(y, self.n_classes), y)
            self.log(f"val_{name}_openset_acc", (pred == y).float().mean().item())
            for k, cname in enumerate(names):
                m = y == k
                if m.any():
                    self.log(f"val_{name}_acc_{cname}", (pred[m] == k).float().mean().item())
        self._val = {}

    #: domain whose batch norms :meth:`predict_step` uses (1: target, the usual case for catalogs)
    predict_domain: int = 1

    def embed(self, x):
        return self.features(x, self.predict_domain)

    def from_embedding(self, embedding):
        return F.softmax(self.logits(embedding), dim=1)

    def prepare(self, domain: str) -> None:
        """Predict with the batch norms of ``domain`` (``source`` or ``target``)."""
        self.predict_domain = 0 if domain == "source" else 1

    def extra_columns(self, output, embedding) -> dict:
        """``unknown``: the entropy of the known-class probabilities above the open-set boundary rho."""
        from labelsky.measures.metrics import entropy as entropy_of

        return {"unknown": entropy_of(output) > float(self.rho)}

    def configure_optimizers(self):
        c = self.cfg
        opt = torch.optim.SGD(self.parameters(), lr=c.lr, momentum=c.momentum, nesterov=True,
                              weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=c.step_epochs, gamma=c.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # the tuner's state and the memory bank travel with checkpoints: a resumed run goes on exactly (a checkpoint
    # of an earlier version, without the bank, refills it within an epoch)
    def on_save_checkpoint(self, checkpoint):
        checkpoint["uda_tuner"] = self.tuner.state_dict()
        checkpoint["uda_bank"] = {k: getattr(self.bank, k).detach().cpu() for k in BANK_FIELDS}

    def on_load_checkpoint(self, checkpoint):
        if "uda_tuner" in checkpoint:
            self.tuner.load_state_dict(checkpoint["uda_tuner"])
        bank = checkpoint.get("uda_bank")
        if isinstance(bank, dict) and all(k in bank for k in BANK_FIELDS) \
                and bank["features"].shape == self.bank.features.shape:
            for k in BANK_FIELDS:
                setattr(self.bank, k, bank[k].to(getattr(self.bank, k).device))


class TunerCallback(L.Callback):
    """Runs the entropy tuner after every training epoch (DeepAstroUDA only) and logs rho and m."""

    def __init__(self, monitor: str = "train_loss", verbose: bool = False):
        self.monitor, self.verbose = monitor, verbose

    def on_train_epoch_end(self, trainer, pl_module: UDAModule):
        # the tuner moves the entropy-separation parameters: nothing to tune without that term (rho, the open-set
        # threshold, then stays at log(K)/2)
        if pl_module.cfg.method == "deepastrouda" and pl_module.cfg.tuner and pl_module.cfg.es:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None and math.isfinite(float(value)):
                action = pl_module.tuner.step(float(value), trainer.current_epoch)
                if action and self.verbose:
                    log.info(f"epoch {trainer.current_epoch}: tuner {action}")
        pl_module.log("rho", pl_module.tuner.rho)
        pl_module.log("margin", pl_module.tuner.m)


class IndexedDataset(torch.utils.data.Dataset):
    """``(image, label, position)`` items: the position is the sample's memory-bank slot."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, y, i


def uda_loaders(source_part, target_part, cfg: UDAConfig, shuffle: bool = True):
    """A CombinedLoader of source and target batches side by side (the longer one sets the epoch)."""
    from lightning.pytorch.utilities import CombinedLoader

    from labelsky.data.datasets import ImageDataset

    loaders = {}
    for name, (ds, rows, labels) in (("source", source_part), ("target", target_part)):
        pre = cfg.preprocess(ds, train=shuffle)
        data = IndexedDataset(ImageDataset(ds, indices=rows, transform=pre, labels=labels))
        g = torch.Generator()  # the loader's own (worker seeds): the global generators are never drawn from
        g.manual_seed(cfg.seed + (name == "target"))
        # order and nuisances a function of (seed, epoch) only: an exact resume (labelsky.methods.epochs)
        sampler = EpochSampler(len(data), seed=cfg.seed + (name == "target")) if shuffle else None
        loaders[name] = torch.utils.data.DataLoader(KeyedDataset(data) if shuffle else data,
                                                    batch_size=cfg.batch_size, sampler=sampler,
                                                    drop_last=shuffle and len(data) > cfg.batch_size,
                                                    num_workers=cfg.num_workers, generator=g)
    return CombinedLoader(loaders, mode="max_size_cycle")
