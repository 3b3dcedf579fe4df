"""Semi-supervised learning of vote fractions with the ET-VAE: three training regimes.

``supervised``  encoder + classifier on labelled galaxies only (no decoder): the vote NLL.
``semi``        alternating steps (the paper's semi-supervised regime): a labelled batch updates encoder
                + classifier with the vote NLL, then an unlabelled batch updates encoder + decoder with
                the negative ELBO; one optimiser (Adam), two steps per training step.
``two_step``    the VAE is trained on the unlabelled galaxies first (``pretrain_epochs``), then encoder
                + classifier are fine-tuned on the labelled ones from those weights.

"Labelled" means having Galaxy Zoo votes; the question is "smooth / featured /
artifact" (catalog columns ``votes_*``). Model selection and early stopping
use the vote NLL of labelled validation galaxies. Evaluation: RMSE between
predicted and observed vote fractions (:func:`vote_rmse`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch

from labelsky.data.io import VOTE_COLUMNS, DatasetError, LabelskyDataset
from labelsky.errors import SettingsError
from labelsky.methods.run import Run, describe_parts, load_checkpoint, load_state
from labelsky.methods.semisup.losses import LIKELIHOODS, predicted_fractions, vote_loss
from labelsky.models.etvae import ETVAE
from labelsky.training import InputSettings, build_trainer

__all__ = ["SemiSupConfig", "SemiSupModule", "VoteDataset", "fit_semisup", "fit_semisup_run", "select_rows",
           "predict_votes", "vote_rmse", "load_semisup", "REGIMES"]

REGIMES = ("supervised", "semi", "two_step")


@dataclass
class SemiSupConfig(InputSettings):
    regime: str = "semi"
    latent_dim: int = 100  # the paper's code
    width: int = 32
    et_groups: list = field(default_factory=lambda: ["translation", "rotation_scale"])  # [] = no ET layers
    head_on: str = "latent"
    likelihood: str = "multinomial"
    beta: float = 1.0  # weight of the KL term
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 20
    pretrain_epochs: int = 10  # two_step: VAE epochs on unlabelled galaxies
    patience: int = 6

    def __post_init__(self):
        if self.regime not in REGIMES:
            raise SettingsError(f"unknown regime {self.regime!r}; expected one of {REGIMES}")
        if self.likelihood not in LIKELIHOODS:
            raise SettingsError(f"unknown likelihood {self.likelihood!r}; expected one of {LIKELIHOODS}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class VoteDataset(torch.utils.data.Dataset):
    """``(image, vote counts [3] float)`` of rows of a dataset (counts -1 where a galaxy has no votes)."""

    def __init__(self, ds: LabelskyDataset, rows, transform):
        self.ds, self.rows, self.transform = ds, np.asarray(rows, dtype=np.int64), transform
        self.counts = np.stack([ds.column(c)[self.rows] for c in VOTE_COLUMNS], 1).astype(np.float32)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.transform(self.ds.image(int(self.rows[i]))), torch.from_numpy(self.counts[i])


class SemiSupModule(L.LightningModule):
    """ET-VAE + vote classifier; ``stage`` is ``supervised``, ``semi`` or ``vae`` (two_step's first stage)."""

    def __init__(self, config: dict, in_chans: int, size: int, stage: str = "semi"):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = SemiSupConfig(**config)
        self.stage = stage
        self.automatic_optimization = False
        self.model = ETVAE(in_chans, size, self.cfg.latent_dim, self.cfg.width, self.cfg.et_groups,
                           head_on=self.cfg.head_on)
        self.figure_dir: Path | None = None
        self._fig_batch = None

    def vote_step(self, x, counts):
        enc = self.model.encode(x)
        out = self.model.classify(enc)
        return vote_loss(out, counts, self.cfg.likelihood), out

    def elbo_step(self, x):
        r = self.model.elbo(x)
        nll, kl = r["nll"].mean(), r["kl"].mean()
        return nll + self.cfg.beta * kl, nll, kl

    def _step(self, loss):
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()

    def training_step(self, batch, batch_idx):
        if self.stage == "supervised":
            loss, _ = self.vote_step(*batch)
            self._step(loss)
            self.log("train_vote_nll", loss, on_epoch=True, on_step=False, batch_size=len(batch[0]), sync_dist=True)
        elif self.stage == "vae":
            loss, nll, kl = self.elbo_step(batch[0])
            self._step(loss)
            self.log_dict({"train_elbo": loss, "train_recon_nll": nll, "train_kl": kl}, on_epoch=True,
                          on_step=False, batch_size=len(batch[0]))
        else:  # semi: alternate a labelled step and an unlabelled step
            vloss, _ = self.vote_step(*batch["labelled"])
            self._step(vloss)
            loss, nll, kl = self.elbo_step(batch["unlabelled"][0])
            self._step(loss)
            self.log_dict({"train_vote_nll": vloss, "train_elbo": loss, "train_recon_nll": nll, "train_kl": kl},
                          on_epoch=True, on_step=False, batch_size=len(batch["labelled"][0]))

    def validation_step(self, batch, batch_idx):
        x, counts = batch
        if self.stage == "vae":
            loss, nll, kl = self.elbo_step(x)
            self.log("val_loss", loss, batch_size=len(x), sync_dist=True)
        else:
            loss, out = self.vote_step(x, counts)
            self.log("val_loss", loss, batch_size=len(x), prog_bar=True, sync_dist=True)
            self.log("val_rmse", vote_rmse(predicted_fractions(out, self.cfg.likelihood), counts), batch_size=len(x),
                     sync_dist=True)
        if batch_idx == 0:
            self._fig_batch = x[:8].detach()

    def on_validation_epoch_end(self):
        if self.figure_dir is not None and self._fig_batch is not None and self.stage in ("semi", "vae") \
                and not self.trainer.sanity_checking:
            from labelsky.evaluate.figures import reconstruction_figure

            name = f"reconstructions_{self.stage}_epoch{self.current_epoch:03d}.png"
            reconstruction_figure(self.model, self._fig_batch, Path(self.figure_dir) / name)

    def predict_step(self, batch, batch_idx=0, dataloader_idx=0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        enc = self.model.encode(x)
        out = self.model.classify(enc)
        return {"fractions": predicted_fractions(out, self.cfg.likelihood), "embedding": enc["mu"], "mu": enc["mu"],
                "pose": enc["pose"]}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr)


def vote_rmse(fractions: torch.Tensor | np.ndarray, counts: torch.Tensor | np.ndarray) -> float:
    """RMSE between predicted and observed vote fractions over all answers of galaxies with votes."""
    f = torch.as_tensor(np.asarray(fractions) if not torch.is_tensor(fractions) else fractions, dtype=torch.float64)
    c = torch.as_tensor(np.asarray(counts) if not torch.is_tensor(counts) else counts, dtype=torch.float64)
    ok = (c >= 0).all(1) & (c.sum(1) > 0)
    if not ok.any():
        return float("nan")
    obs = c[ok] / c[ok].sum(1, keepdim=True)
    return float(torch.sqrt(((f.to(obs)[ok] - obs) ** 2).mean()))


def _loader(ds, rows, cfg, shuffle):
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    data = VoteDataset(ds, rows, cfg.preprocess(ds))
    return torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=shuffle, num_workers=cfg.num_workers,
                                       drop_last=shuffle and len(data) > cfg.batch_size, generator=g)


def _fit_stage(run: Run, module: SemiSupModule, train, val, cfg: SemiSupConfig, epochs: int, progress: bool,
               stage: str = ""):
    stage_dir = run.path / stage if stage else run.path
    trainer = build_trainer(stage_dir, cfg, monitor="val_loss", mode="min", patience=cfg.patience,
                            max_epochs=epochs, progress=progress)
    module.figure_dir = stage_dir / "figures"
    return load_semisup(run.fit(trainer, module, train, val, stage=stage))


def select_rows(datasets, cfg: "SemiSupConfig | None" = None, *, labels: int | None = None, seed: int = 0) -> dict:
    """Rows of the one dataset of ``datasets`` for the semi-supervised regimes.

    ``labelled``: training rows with votes (at most ``labels`` of them, drawn
    with ``seed``); ``unlabelled``: every row of splits ``train`` and
    ``unlabelled`` (their votes are never read); ``val`` / ``test``: rows with
    votes of those splits. Parts are ``(dataset, rows, None)``.
    """
    (ds,) = datasets
    missing = [c for c in VOTE_COLUMNS if c not in ds.catalog.column_names]
    if missing:
        raise DatasetError(f"{ds.path}: no vote column(s) {missing}; semisup needs Galaxy Zoo votes")
    split = ds.column("split").astype(str)
    voted = sum(ds.column(c) for c in VOTE_COLUMNS) > 0
    pool = np.flatnonzero(np.isin(split, ["train", "unlabelled"]))
    labelled = np.flatnonzero((split == "train") & voted)
    if labels is not None:
        labelled = np.sort(np.random.default_rng(seed).permutation(labelled)[:labels])
    val, test = np.flatnonzero((split == "val") & voted), np.flatnonzero((split == "test") & voted)
    for name, rows in (("labelled training", labelled), ("validation", val)):
        if not len(rows):
            raise DatasetError(f"{ds.path}: no {name} galaxies with votes (votes_* > 0 and split train / val)")
    return {name: (ds, rows, None) for name, rows in
            (("labelled", labelled), ("unlabelled", pool), ("val", val), ("test", test))}


def fit_semisup_run(run_dir, datasets, cfg: SemiSupConfig, *, labels: int | None = None, overwrite: bool = False,
                    progress: bool = True) -> SemiSupModule:
    """:func:`select_rows` then :func:`fit_semisup` (the registry's ``fit``)."""
    parts = select_rows(datasets, cfg, labels=labels, seed=cfg.seed)
    ds = datasets[0]
    return fit_semisup(run_dir, ds, parts["labelled"][1], parts["unlabelled"][1], parts["val"][1], cfg,
                       progress=progress, overwrite=overwrite)


def fit_semisup(run_dir, ds: LabelskyDataset, labelled_rows, unlabelled_rows, val_rows, cfg: SemiSupConfig,
                progress: bool = True, overwrite: bool = False) -> SemiSupModule:
    """Train ``cfg.regime`` into ``run_dir`` (resumable per stage); returns the best model (lowest val vote NLL).

    ``labelled_rows`` need votes; ``unlabelled_rows`` are used without their
    votes (``semi``, ``two_step``); ``val_rows`` (with votes) select the model.
    """
    from lightning.pytorch.utilities import CombinedLoader

    if not cfg.bands:  # recorded by name: a dataset without them is refused by name, never matched by position
        cfg = dataclasses.replace(cfg, bands=list(ds.bands))
    size = cfg.image_size or ds.image_shape[-1]
    in_chans = cfg.in_chans(ds)
    data = {"labelled": describe_parts([(ds, labelled_rows, None)]),
            "unlabelled": describe_parts([(ds, unlabelled_rows, None)]), "val": describe_parts([(ds, val_rows, None)])}
    run = Run.start(run_dir, method="semisup", config=cfg.to_dict(), data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=[ds.path], extra={"dataset": str(ds.path), "n_labelled": int(len(labelled_rows)),
                                             "n_unlabelled": int(len(unlabelled_rows)), "n_val": int(len(val_rows))})
    labelled = _loader(ds, labelled_rows, cfg, True)
    val = _loader(ds, val_rows, cfg, False)
    if cfg.regime == "supervised":
        return _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "supervised"), labelled, val, cfg,
                          cfg.max_epochs, progress)
    unlabelled = _loader(ds, unlabelled_rows, cfg, True)
    if cfg.regime == "semi":
        train = CombinedLoader({"labelled": labelled, "unlabelled": unlabelled}, mode="max_size_cycle")
        return _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "semi"), train, val, cfg,
                          cfg.max_epochs, progress)
    vae = _fit_stage(run, SemiSupModule(cfg.to_dict(), in_chans, size, "vae"), unlabelled,
                     val, cfg, cfg.pretrain_epochs, progress, stage="pretrain")
    fine = SemiSupModule(cfg.to_dict(), in_chans, size, "supervised")
    if not (run.checkpoint_dir() / "last.ckpt").exists():
        fine.model.load_state_dict(vae.model.state_dict())
    return _fit_stage(run, fine, labelled, val, cfg, cfg.max_epochs, progress)


def load_semisup(checkpoint, map_location="cpu") -> SemiSupModule:
    """A trained :class:`SemiSupModule` from a checkpoint (weights-only load)."""
    ckpt = load_checkpoint(checkpoint, map_location)
    hp = ckpt["hyper_parameters"]
    m = SemiSupModule(hp["config"], hp["in_chans"], hp["size"], hp.get("stage", "semi"))
    load_state(m, ckpt, checkpoint)
    return m.eval()


@torch.inference_mode()
def predict_votes(model: SemiSupModule, ds: LabelskyDataset, rows, batch_size: int = 256) -> dict:
    """Predicted vote fractions, latent means and poses of ``rows``."""
    model = model.eval()
    loader = torch.utils.data.DataLoader(VoteDataset(ds, rows, model.cfg.preprocess(ds)), batch_size=batch_size)
    out = {"fractions": [], "mu": [], "pose": [], "counts": []}
    for x, c in loader:
        r = model.predict_step(x.to(model.device))
        for k in ("fractions", "mu", "pose"):
            out[k].append(r[k].float().cpu().numpy())
        out["counts"].append(c.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}
