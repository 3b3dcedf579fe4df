"""The model and training of the example method ``probe`` (imported when the method is first used)."""

import numpy as np
import torch
import torch.nn.functional as F

from labelsky.methods.base import LabelskyModule
from labelsky.methods.parts import Part, describe_parts
from labelsky.methods.registry import Fitted
from labelsky.methods.run import Run
from labelsky.methods.training import build_trainer, make_loader
from labelsky.models.backbones import create_backbone

from . import ProbeConfig


class ProbeModule(LabelskyModule):
    config_cls = ProbeConfig
    output = "probs"

    def __init__(self, config: dict, in_chans: int, class_names: list):
        super().__init__(config)
        self.save_hyperparameters()
        self.backbone, _ = create_backbone(self.cfg.backbone, in_chans)
        self.head = torch.nn.Linear(self.backbone.num_features, len(class_names))

    def embed(self, x):
        return self.backbone(x)

    def from_embedding(self, embedding):
        return self.head(embedding).softmax(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.head(self.embed(x)), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(y))
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr)


def select_rows(datasets, cfg):
    (ds,) = datasets["data"]
    train = (ds.column("label") >= 0) & (ds.column("split") == "train")
    return {"train": [Part(ds, np.flatnonzero(train))]}


def fit(run_dir, parts, cfg, *, overwrite=False, progress=True):
    (part,) = parts["train"]
    ds = part.dataset
    run = Run.start(run_dir, method="probe", config=cfg, data=describe_parts([part]), seed=cfg.seed,
                    overwrite=overwrite, inputs=[ds.path])
    model = ProbeModule(cfg.to_dict(), cfg.in_chans(ds), list(ds.classes))
    trainer = build_trainer(run.path, cfg, monitor="train_loss", progress=progress)
    best = run.fit(trainer, model, make_loader([part], cfg, shuffle=True))
    return Fitted(ProbeModule.load(best), {"n_train": len(part.rows)})


def summary(run_dir, report):
    return [f"trained on {report['n_train']} galaxies -> {run_dir}"]
