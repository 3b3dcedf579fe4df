"""Semi-supervised learning of vote fractions with the ET-VAE: three training regimes.

``supervised``  encoder + classifier on labelled galaxies only (no decoder): the vote NLL.
``semi``        alternating steps (the paper's semi-supervised regime): a labelled batch updates encoder
                + classifier with the vote NLL, then an unlabelled batch updates encoder + decoder with
                the negative ELBO.
``two_step``    the VAE is trained on the unlabelled galaxies first (``pretrain_epochs``), then encoder
                + classifier are fine-tuned on the labelled ones from those weights.

**One budget for every regime.** An epoch is ``steps_per_epoch`` classifier
updates in every regime (default: one pass over the unlabelled pool, at
least one over the labelled galaxies), so with equal epochs ``supervised``,
``semi`` and ``two_step``'s fine-tuning make the same number of vote-loss
updates; ``semi`` adds as many ELBO updates, ``two_step`` its VAE epochs. The
labelled galaxies are drawn as successive shuffles of the whole labelled set:
none is dropped, none repeats before all were seen. The counts reached are
stored in the checkpoint (``n_vote_updates``, ``n_elbo_updates``).

**Two optimisers.** The ELBO's gradient on the encoder is two orders of
magnitude larger than the vote loss's; one Adam for both would normalise the
vote steps away. By default (``optimisers="separate"``) the vote loss has its
own Adam over encoder + classifier and the ELBO its own over encoder +
decoder, so each loss moves the encoder at Adam's step size; the size of
each update of the encoder is logged (``encoder_step_vote``,
``encoder_step_elbo``). ``"shared"`` (one Adam) is kept as an ablation.

"Labelled" means having Galaxy Zoo votes; the question is "smooth / featured /
artifact" (catalog columns ``votes_*``). Model selection and early stopping
use the vote NLL of labelled validation galaxies; :func:`select_rows` draws
them from the label budget. Evaluation: RMSE between predicted and observed
vote fractions (:func:`vote_rmse`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from labelsky.data.io import VOTE_COLUMNS, DatasetError, LabelskyDataset
from labelsky.data.vote_trees import get_tree
from labelsky.errors import RunFolderError, SettingsError
from labelsky.measures.metrics import question_rmse, vote_rmse
from labelsky.methods.base import LabelskyModule
from labelsky.methods.epochs import EpochSampler, KeyedDataset
from labelsky.methods.parts import Part, describe_parts, one
from labelsky.methods.registry import Fitted
from labelsky.methods.run import Run
from labelsky.methods.semisup.config import ANSWERS, REGIMES, SemiSupConfig, answer_names, vote_columns
from labelsky.methods.semisup.losses import predicted_fractions, vote_loss
from labelsky.methods.semisup.tree_loss import tree_fractions, tree_vote_nll
from labelsky.methods.training import build_trainer, is_global_zero
from labelsky.models.etvae import ETVAE

__all__ = ["SemiSupConfig", "SemiSupModule", "VoteDataset", "fit", "select_rows", "split_label_budget",
           "steps_per_epoch", "summary", "REGIMES", "ANSWERS"]



class VoteDataset(torch.utils.data.Dataset):
    """``(image, vote counts [A] float)`` of rows of a dataset (counts -1 where a galaxy has no votes); ``columns``:
    the count columns (default: the first question's)."""

    def __init__(self, ds: LabelskyDataset, rows, transform, columns=VOTE_COLUMNS):
        self.ds, self.rows, self.transform = ds, np.asarray(rows, dtype=np.int64), transform
        self.counts = np.stack([ds.column(c)[self.rows] for c in columns], 1).astype(np.float32)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        image = self.ds.image(row)  # a transform with ``per_row`` also gets the row (per-row pixel scales)
        image = self.transform(image, row) if getattr(self.transform, "per_row", False) else self.transform(image)
        return image, torch.from_numpy(self.counts[i])


class SemiSupModule(LabelskyModule):
    """ET-VAE + vote classifier; ``stage`` is ``supervised``, ``semi`` or ``vae`` (two_step's first stage)."""

    config_cls = SemiSupConfig
    output = "fractions"

    def __init__(self, config: dict, in_chans: int, size: int, stage: str = "semi"):
        super().__init__(config)
        self.save_hyperparameters()
        self.stage = stage
        self.automatic_optimization = False
        self.tree = None if self.cfg.questions == "first" else get_tree(self.cfg.questions)
        self._slices = self.tree.slices() if self.tree is not None else None
        self.model = ETVAE(in_chans, size, self.cfg.latent_dim, self.cfg.width, self.cfg.et_groups,
                           head_on=self.cfg.head_on, n_outputs=len(answer_names(self.cfg.questions)))
        self.figure_dir: Path | None = None
        self._fig_batch = None
        self.register_buffer("n_vote_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("n_elbo_updates", torch.zeros((), dtype=torch.long))

    def parameter_groups(self) -> dict:
        """``encoder`` (ET layers, convolutions, latent means and variances), ``decoder``, ``head``."""
        groups = {"encoder": [], "decoder": [], "head": []}
        for name, p in self.model.named_parameters():
            part = name.split(".")[0]
            groups["decoder" if part in ("from_z", "decoder", "log_sigma") else
                   "head" if part == "head" else "encoder"].append(p)
        return groups

    def _encoder_vector(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.parameter_groups()["encoder"]]).clone()

    def vote_step(self, x, counts):
        enc = self.model.encode(x)
        out = self.model.classify(enc)
        if self.tree is not None:  # every question of the tree, each with its own volunteers
            return tree_vote_nll(out, counts, self._slices, self.cfg.likelihood), out
        return vote_loss(out, counts, self.cfg.likelihood), out

    def fractions(self, out: torch.Tensor) -> torch.Tensor:
        """Predicted answer fractions (of every question of the tree, each summing to 1)."""
        if self.tree is not None:
            return tree_fractions(out, self._slices, self.cfg.likelihood)
        return predicted_fractions(out, self.cfg.likelihood)

    def elbo_step(self, x):
        r = self.model.elbo(x)
        nll, kl = r["nll"].mean(), r["kl"].mean()
        return nll + self.cfg.beta * kl, nll, kl

    def _step(self, loss, opt):
        opt.zero_grad()
        if self._trainer is not None:
            self.manual_backward(loss)
        else:  # a step outside a Trainer (tests, notebooks)
            loss.backward()
        opt.step()

    def _optimiser(self, loss: str):
        """The optimiser of ``"vote"`` or ``"elbo"`` (the same one when shared)."""
        opts = self.optimizers() if self._trainer is not None else self._plain_optimisers
        opts = opts if isinstance(opts, (list, tuple)) else [opts]
        if len(opts) == 1:
            return opts[0]
        return opts[0] if loss == "vote" else opts[1]

    def vote_update(self, x, counts) -> torch.Tensor:
        """One vote-loss update of encoder + classifier."""
        loss, _ = self.vote_step(x, counts)
        self._step(loss, self._optimiser("vote"))
        self.n_vote_updates += 1
        return loss.detach()

    def elbo_update(self, x) -> tuple:
        """One negative-ELBO update of encoder + decoder."""
        loss, nll, kl = self.elbo_step(x)
        self._step(loss, self._optimiser("elbo"))
        self.n_elbo_updates += 1
        return loss.detach(), nll.detach(), kl.detach()

    def semi_update(self, labelled, unlabelled, measure: bool = False) -> dict:
        """A labelled vote update then an unlabelled ELBO update; with ``measure``, the L2 size of each
        update of the encoder's parameters."""
        out = {}
        before = self._encoder_vector() if measure else None
        out["vote"] = self.vote_update(*labelled)
        if measure:
            mid = self._encoder_vector()
            out["encoder_step_vote"] = float((mid - before).norm())
        out["elbo"], out["nll"], out["kl"] = self.elbo_update(unlabelled[0])
        if measure:
            out["encoder_step_elbo"] = float((self._encoder_vector() - mid).norm())
        return out

    def training_step(self, batch, batch_idx):
        if self.stage == "supervised":
            loss = self.vote_update(*batch)
            self.log("train_vote_nll", loss, on_epoch=True, on_step=False, batch_size=len(batch[0]), sync_dist=True)
        elif self.stage == "vae":
            loss, nll, kl = self.elbo_update(batch[0])
            self.log_dict({"train_elbo": loss, "train_recon_nll": nll, "train_kl": kl}, on_epoch=True,
                          on_step=False, batch_size=len(batch[0]))
        else:  # semi: alternate a labelled step and an unlabelled step
            r = self.semi_update(batch["labelled"], batch["unlabelled"],
                                 measure=batch_idx % max(1, self.cfg.log_every) == 0)
            self.log_dict({"train_vote_nll": r["vote"], "train_elbo": r["elbo"], "train_recon_nll": r["nll"],
                           "train_kl": r["kl"]}, on_epoch=True, on_step=False, batch_size=len(batch["labelled"][0]))
            if "encoder_step_vote" in r:
                self.log_dict({k: r[k] for k in ("encoder_step_vote", "encoder_step_elbo")}, on_epoch=True,
                              on_step=False, batch_size=1)
        self.log_dict({"n_vote_updates": self.n_vote_updates.float(), "n_elbo_updates": self.n_elbo_updates.float()},
                      on_epoch=True, on_step=False, reduce_fx="max", batch_size=1)

    def validation_step(self, batch, batch_idx):
        x, counts = batch
        if self.stage == "vae":
            loss, nll, kl = self.elbo_step(x)
            self.log("val_loss", loss, batch_size=len(x), sync_dist=True)
        else:
            loss, out = self.vote_step(x, counts)
            self.log("val_loss", loss, batch_size=len(x), prog_bar=True, sync_dist=True)
            # the first question's RMSE whatever the head learns (its first three columns in every tree)
            self.log("val_rmse", vote_rmse(self.fractions(out)[:, :3], counts[:, :3]), batch_size=len(x),
                     sync_dist=True)
        if batch_idx == 0:
            self._fig_batch = x[:8].detach()

    def on_validation_epoch_end(self):
        if self.figure_dir is not None and self._fig_batch is not None and self.stage in ("semi", "vae") \
                and not self.trainer.sanity_checking:
            from labelsky.measures.figures import reconstruction_figure

            name = f"reconstructions_{self.stage}_epoch{self.current_epoch:03d}.png"
            reconstruction_figure(self.model, self._fig_batch, Path(self.figure_dir) / name)

    def predict_step(self, batch, batch_idx=0, dataloader_idx=0):
        """Vote fractions, the latent mean as the embedding, and the canonical pose."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        enc = self.model.encode(x)
        out = self.model.classify(enc)
        return {"fractions": self.fractions(out), "embedding": enc["mu"], "mu": enc["mu"],
                "pose": enc["pose"]}

    def output_names(self) -> list[str]:
        return answer_names(self.cfg.questions)

    @classmethod
    def upgrade_checkpoint(cls, ckpt: dict, path) -> dict:
        """Checkpoints made before update counting and the isotropic translation layer get their counters (0);
        one with that older translation layer is refused (its weights mean something else now)."""
        hp = ckpt["hyper_parameters"]
        state = ckpt.get("state_dict", {})
        if isinstance(state, dict) and state and "n_vote_updates" not in state:
            if "translation" in hp.get("config", {}).get("et_groups", []):
                raise RunFolderError(f"{path} was made by an older labelsky whose translation ET layer is not "
                                     "rotation-equivariant; its weights mean something else now: train the run again")
            state.setdefault("n_vote_updates", torch.zeros((), dtype=torch.long))
            state.setdefault("n_elbo_updates", torch.zeros((), dtype=torch.long))
        return {"config": hp["config"], "in_chans": hp["in_chans"], "size": hp["size"],
                "stage": hp.get("stage", "semi")}

    def configure_optimizers(self):
        """One Adam per loss the stage uses (``optimisers="separate"``), or one for all (``"shared"``)."""
        g = self.parameter_groups()
        if self.cfg.optimisers == "shared" or self.stage != "semi":
            params = {"supervised": g["encoder"] + g["head"], "vae": g["encoder"] + g["decoder"]}.get(
                self.stage, list(self.model.parameters()))
            opts = [torch.optim.Adam(params, lr=self.cfg.lr)]
        else:
            opts = [torch.optim.Adam(g["encoder"] + g["head"], lr=self.cfg.lr),
                    torch.optim.Adam(g["encoder"] + g["decoder"], lr=self.cfg.lr)]
        self._plain_optimisers = opts
        return opts


def steps_per_epoch(cfg: SemiSupConfig, n_labelled: int, n_unlabelled: int) -> int:
    """Classifier updates per epoch, the same in every regime: ``cfg.steps_per_epoch``, or enough batches
    for one pass over the unlabelled pool and over the labelled galaxies, whichever is longer."""
    if cfg.steps_per_epoch is not None:
        return int(cfg.steps_per_epoch)
    return max(1, -(-max(n_labelled, n_unlabelled) // cfg.batch_size))


def _loader(ds, rows, cfg, shuffle, steps: int | None = None, seed_offset: int = 0):
    """Evaluation order (``shuffle=False``), or ``steps`` full batches drawn as successive shuffles of all
    ``rows``: no galaxy is dropped and none repeats before every one was drawn."""
    # training batches: with --randomise
    data = VoteDataset(ds, rows, cfg.preprocess(ds, train=shuffle), vote_columns(cfg.questions))
    if not shuffle:
        return torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    # successive shuffles whose order (and nuisances) depend on (seed, epoch) only: an exact resume
    # the loader's own generator (worker seeds): a loader without one draws from the global generators, which
    # would then depend on when Lightning creates its iterator (earlier on resume)
    seed = cfg.seed * 1000 + seed_offset
    sampler = EpochSampler(len(data), seed=seed, num_samples=steps * cfg.batch_size)
    return torch.utils.data.DataLoader(KeyedDataset(data), batch_size=cfg.batch_size, sampler=sampler,
                                       num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(seed))


def _fit_stage(run: Run, module: SemiSupModule, train, val, cfg: SemiSupConfig, epochs: int, progress: bool,
               stage: str = ""):
    stage_dir = run.path / stage if stage else run.path
    trainer = build_trainer(stage_dir, cfg, monitor="val_loss", mode="min", patience=cfg.patience,
                            max_epochs=epochs, progress=progress)
    module.figure_dir = stage_dir / "figures"
    return SemiSupModule.load(run.fit(trainer, module, train, val, stage=stage))


def split_label_budget(rows, labels: int, *, val_fraction: float = 0.2, seed: int = 0) -> tuple:
    """``labels`` of ``rows`` drawn with ``seed``, split into (training, validation) rows: the model is
    selected within the label budget, never on more labels than it may learn from. ``val_fraction`` of the
    budget (at least 1, and at least 1 left to train) validates."""
    rows = np.asarray(rows)
    if labels > len(rows):
        raise SettingsError(f"{labels} labelled galaxies asked for; only {len(rows)} have votes")
    if labels < 2:
        raise SettingsError(f"a label budget of {labels} cannot both train and select a model (at least 2)")
    drawn = np.random.default_rng(seed).permutation(rows)[:labels]
    n_val = min(labels - 1, max(1, int(round(val_fraction * labels))))
    return np.sort(drawn[n_val:]), np.sort(drawn[:n_val])


def select_rows(datasets: dict, cfg: SemiSupConfig | None = None) -> dict:
    """Rows of the one ``data`` dataset for the semi-supervised regimes: ``{"labelled", "unlabelled", "val",
    "test"}``, one part each (labels are the vote columns).

    ``labelled``: training rows with votes; ``unlabelled``: every row of
    splits ``train`` and ``unlabelled`` (their votes are never read); ``test``:
    rows with votes of split ``test``. With a label budget ``cfg.labels`` and
    ``cfg.selection`` ``budget`` (default), ``labels`` voted training galaxies
    are drawn with ``cfg.seed`` and ``cfg.val_fraction`` (default 0.2) of them
    form ``val`` (:func:`split_label_budget`); with ``split``, or without a
    budget, ``val`` is the voted rows of split ``val``.
    """
    cfg = cfg or SemiSupConfig()
    (ds,) = datasets["data"]
    missing = [c for c in vote_columns(cfg.questions) if c not in ds.catalog.column_names]
    if missing:
        hint = "" if cfg.questions == "first" else (f" of the {cfg.questions} tree ({len(missing)} missing; import "
                                                    f"them with labelsky import --votes TABLE --schema SCHEMA)")
        raise DatasetError(f"{ds.path}: no vote column(s) {missing[:4]}{hint}; semisup needs Galaxy Zoo votes")
    split = ds.column("split").astype(str)
    voted = sum(ds.column(c) for c in VOTE_COLUMNS) > 0
    pool = np.flatnonzero(np.isin(split, ["train", "unlabelled"]))
    labelled = np.flatnonzero((split == "train") & voted)
    val, test = np.flatnonzero((split == "val") & voted), np.flatnonzero((split == "test") & voted)
    val_fraction = 0.2 if cfg.val_fraction is None else cfg.val_fraction
    if cfg.labels is not None and (cfg.selection or "budget") == "budget":
        labelled, val = split_label_budget(labelled, cfg.labels, val_fraction=val_fraction, seed=cfg.seed)
    elif cfg.labels is not None:
        labelled = np.sort(np.random.default_rng(cfg.seed).permutation(labelled)[:cfg.labels])
    for name, rows in (("labelled training", labelled), ("validation", val)):
        if not len(rows):
            raise DatasetError(f"{ds.path}: no {name} galaxies with votes (votes_* > 0 and split train / val)")
    return {name: [Part(ds, rows, None)] for name, rows in
            (("labelled", labelled), ("unlabelled", pool), ("val", val), ("test", test))}


def fit(run_dir, parts: dict, cfg: SemiSupConfig, *, overwrite: bool = False, progress: bool = True) -> Fitted:
    """Train ``cfg.regime`` on ``parts`` (:func:`select_rows`) into ``run_dir`` (resumable per stage).

    ``labelled`` rows need votes; ``unlabelled`` rows are used without their
    votes (``semi``, ``two_step``); ``val`` rows (with votes) select the model
    (lowest validation vote NLL); ``test`` rows (optional) are scored by the
    RMSE of the predicted vote fractions. Writes ``RUN/eval.json``; returns the
    best model and that report.
    """
    from labelsky.methods.predict import Predictor

    labelled, pool, val = one(parts, "labelled"), one(parts, "unlabelled"), one(parts, "val")
    test = parts.get("test") or []
    ds = labelled.dataset
    model = _fit_regime(run_dir, ds, labelled.rows, pool.rows, val.rows, cfg, progress=progress,
                        overwrite=overwrite)
    report = {"n_labelled": int(len(labelled.rows)), "n_val": int(len(val.rows)), "n_unlabelled": int(len(pool.rows)),
              "n_test": int(sum(len(p.rows) for p in test)),
              "selection": (cfg.selection or "budget") if cfg.labels else "split",
              "steps_per_epoch": steps_per_epoch(cfg, len(labelled.rows), len(pool.rows)),
              "vote_updates": int(model.n_vote_updates), "elbo_updates": int(model.n_elbo_updates)}
    if report["n_test"] and is_global_zero():
        predictor = Predictor(model, device=cfg.device)
        fractions = np.concatenate([predictor.predict(p.dataset, p.rows, embed=False)["output"] for p in test])
        columns = vote_columns(cfg.questions)
        counts = np.concatenate([np.stack([p.dataset.column(c)[np.asarray(p.rows)] for c in columns], 1)
                                 for p in test])
        report["test_rmse"] = vote_rmse(fractions[:, :3], counts[:, :3])  # the first question, in every tree
        if cfg.questions != "first":
            report["test_rmse_questions"] = question_rmse(fractions, counts, get_tree(cfg.questions))
    if is_global_zero():
        from labelsky.utils import atomic_write_json

        atomic_write_json(Path(run_dir) / "eval.json", report)
    return Fitted(model, report)


def summary(run_dir: Path, report: dict) -> list[str]:
    """What ``labelsky semisup`` prints after training."""
    lines = []
    if "test_rmse" in report:
        lines.append(f"test: {report['n_test']} galaxies, RMSE of vote fractions {report['test_rmse']:.4f}")
    return lines + [f"run: {run_dir}; figures: {Path(run_dir) / 'figures'}"]


def _fit_regime(run_dir, ds: LabelskyDataset, labelled_rows, unlabelled_rows, val_rows, cfg: SemiSupConfig,
                progress: bool = True, overwrite: bool = False) -> SemiSupModule:
    """Train ``cfg.regime`` into ``run_dir`` (resumable per stage); returns the best model (lowest val vote NLL)."""
    from lightning.pytorch.utilities import CombinedLoader

    if not cfg.bands:  # recorded by name: a dataset without them is refused by name, never matched by position
        cfg = dataclasses.replace(cfg, bands=list(ds.bands))
    size = cfg.image_size or ds.image_shape[-1]
    in_chans = cfg.in_chans(ds)
    data = {"labelled": describe_parts([(ds, labelled_rows, None)]),
            "unlabelled": describe_parts([(ds, unlabelled_rows, None)]), "val": describe_parts([(ds, val_rows, None)])}
    run = Run.start(run_dir, method="semisup", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=[ds.path], extra={"dataset": str(ds.path), "n_labelled": int(len(labelled_rows)),
                                             "steps_per_epoch": steps_per_epoch(cfg, len(labelled_rows),
                                                                                len(unlabelled_rows)),
                                             "n_unlabelled": int(len(unlabelled_rows)), "n_val": int(len(val_rows))})
    steps = steps_per_epoch(cfg, len(labelled_rows), len(unlabelled_rows))
    labelled = _loader(ds, labelled_rows, cfg, True, steps)
    val = _loader(ds, val_rows, cfg, False)
    if cfg.regime == "supervised":
        return _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "supervised"), labelled, val, cfg,
                          cfg.max_epochs, progress)
    unlabelled = _loader(ds, unlabelled_rows, cfg, True, steps, seed_offset=1)
    if cfg.regime == "semi":
        train = CombinedLoader({"labelled": labelled, "unlabelled": unlabelled}, mode="min_size")
        return _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "semi"), train, val, cfg,
                          cfg.max_epochs, progress)
    vae = _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "vae"), unlabelled,
                     val, cfg, cfg.pretrain_epochs, progress, stage="pretrain")
    fine = SemiSupModule(cfg.to_dict(), in_chans, size, "supervised")
    if not (run.checkpoint_dir() / "last.ckpt").exists():
        fine.model.load_state_dict(vae.model.state_dict())
        fine.n_elbo_updates.copy_(vae.n_elbo_updates)  # the VAE stage's updates are part of this model's training
    return _fit_stage(run, fine, labelled, val, cfg, cfg.max_epochs, progress)
