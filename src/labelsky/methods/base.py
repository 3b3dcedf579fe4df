"""The one base of every method's model: settings, embedding, prediction and safe loading.

As Zoobot's finetuneable base module, :class:`LabelskyModule` owns what every
method shares, and a method's module sets the rest:

* ``config_cls``: its settings (:class:`labelsky.methods.settings.Settings`);
  ``self.cfg`` is built from the ``config`` dict every module takes first;
* ``output``: what its predictions are (``probs``, ``fractions``, ``values``
  or ``embedding`` alone, see :data:`labelsky.methods.registry.OUTPUTS`);
* :meth:`embed` (images -> the vector catalogs store and maps cluster) and
  :meth:`from_embedding` (that vector -> the output); :meth:`predict_step`
  puts them together as ``{output: [N, K], "embedding": [N, D]}``;
* :meth:`output_names`: the name of every output column;
* :meth:`preprocess`: the preprocessing of a dataset's images (the config's by default);
* :meth:`load`: a model from a checkpoint, through
  :func:`labelsky.methods.run.load_checkpoint` (``weights_only=True``) only;
  :meth:`upgrade_checkpoint` adapts checkpoints of earlier versions.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import torch

__all__ = ["LabelskyModule"]


class LabelskyModule(L.LightningModule):
    """Base of the models of every registered method (see the module docstring)."""

    config_cls: type = None
    output: str = "probs"

    def __init__(self, config: dict):
        super().__init__()
        self.cfg = self.config_cls.from_dict(config, strict=False)

    # ------------------------------------------------------------------ prediction
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``[N, D]`` of preprocessed images ``x`` (every method's model defines it)."""
        raise TypeError(f"{type(self).__name__} defines no embed(x): a method's model must")

    def from_embedding(self, embedding: torch.Tensor) -> torch.Tensor | None:
        """The output ``[N, K]`` of an embedding (``None`` for a method whose output is the embedding; every
        method's model defines it)."""
        raise TypeError(f"{type(self).__name__} defines no from_embedding(e): a method's model must")

    def predict_step(self, batch, batch_idx: int = 0, dataloader_idx: int = 0) -> dict:
        """``{output: [N, K], "embedding": [N, D]}`` of a batch of preprocessed images (or ``(x, ...)``)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        emb = self.embed(x)
        out = {"embedding": emb}
        if self.output != "embedding":
            out[self.output] = self.from_embedding(emb)
        return out

    def output_names(self) -> list[str]:
        """The name of every output column (class names for probabilities)."""
        return list(self.hparams.get("class_names") or [])

    def preprocess(self, ds):
        """The preprocessing of ``ds``'s images this model was trained with."""
        return self.cfg.preprocess(ds)

    def prepare(self, domain: str) -> None:
        """Set up before predicting images of ``domain`` (``source`` or ``target``); nothing by default."""

    def extra_columns(self, output, embedding) -> dict:
        """Further catalog columns from the outputs (e.g. ``unknown``); none by default."""
        return {}

    def truth(self, ds):
        """The true value ``[N, K]`` of every output column of every row of ``ds`` (NaN where unknown), for a
        regression's evaluation; ``None`` when the dataset has none (or the output is not a regression)."""
        return None

    # ------------------------------------------------------------------ loading
    @classmethod
    def upgrade_checkpoint(cls, ckpt: dict, path: Path) -> dict:
        """The hyper-parameters to build the model of ``ckpt`` with (checkpoints of earlier versions may hold
        more; a config's weight file is not read again: the weights come from the checkpoint)."""
        known = inspect.signature(cls.__init__).parameters
        hp = {k: v for k, v in ckpt["hyper_parameters"].items() if k in known}
        if isinstance(hp.get("config"), dict) and "weights" in hp["config"]:
            hp["config"] = dict(hp["config"], weights=None)
        return hp

    @classmethod
    def load(cls, checkpoint: str | Path, map_location="cpu"):
        """The trained model of a checkpoint, in eval mode (safe load: tensors and plain data only)."""
        from labelsky.methods.run import load_checkpoint, load_state

        ckpt = load_checkpoint(checkpoint, map_location)
        model = cls(**cls.upgrade_checkpoint(ckpt, Path(checkpoint)))
        load_state(model, ckpt, checkpoint)
        model.on_load_checkpoint(ckpt)
        return model.eval()
