"""The one prediction path: a trained model of any method over rows of a dataset.

A :class:`Predictor` holds a model (or a run folder, loaded lazily in the
process that first predicts: a catalog engine's process or each Ray actor)
and answers, for a batch of preprocessed images,
``{"output": [N, K], "embedding": [N, D]}``: the method's output (class
probabilities, vote fractions, regression values; ``None`` for a method
whose output is its embedding) and the embedding. It honours the method's
preprocessing (:meth:`Predictor.preprocess`), its set-up for a domain (the
batch norms of an adapted model) and its further columns (``unknown``).
:meth:`Predictor.predict` runs it over rows of a dataset; catalogs
(:mod:`labelsky.catalog`), evaluation, the domain gap and ``labelsky cluster``
all predict through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labelsky.errors import SettingsError
from labelsky.utils import default_device

__all__ = ["Predictor", "predict"]


class Predictor:
    """Predictions of a trained model (see the module docstring).

    Parameters
    ----------
    model
        A trained :class:`~labelsky.methods.base.LabelskyModule`, or a run folder (loaded on first use).
    device
        ``auto`` (a GPU when there is one), ``cpu``, ``cuda:1`` ...
    domain
        ``target`` (default) or ``source``: whose batch norms an adapted model uses.
    channels_last
        Run batches in channels-last memory format (faster convolutions on GPUs).
    """

    def __init__(self, model, *, device: str | None = "auto", domain: str = "target", channels_last: bool = False):
        if domain not in ("source", "target"):
            raise SettingsError(f"domain must be 'source' or 'target', got {domain!r}")
        self.device, self.domain, self.channels_last = device or "auto", domain, channels_last
        if isinstance(model, (str, Path)):
            self.run, self._model = Path(model), None
        else:
            self.run, self._model = None, model
            self._place(model)
        model = self.model  # read what the catalog needs here (cheap), before any pickling
        self.output = model.output
        self.class_names = list(model.output_names())

    @property
    def kind(self) -> str:
        """The method's output kind (``probs``, ``fractions``, ``values`` or ``embedding``)."""
        return self.output

    def _place(self, model):
        self._dev = torch.device(default_device(None if self.device == "auto" else self.device))
        model = model.to(self._dev).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.prepare(self.domain)
        self._model = model
        return model

    @property
    def model(self):
        if self._model is None:
            from labelsky.methods.run import load_run

            self._place(load_run(self.run))
        return self._model

    def set_domain(self, domain: str) -> None:
        """Predict as images of ``domain`` from now on (``source`` or ``target``)."""
        self.domain = domain
        self.model.prepare(domain)

    def preprocess(self, ds):
        """The preprocessing the model was trained with, for the images of ``ds``."""
        return self.model.preprocess(ds)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.run is not None:
            state["_model"] = None  # every process loads its own copy on its own device
        state.pop("_dev", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._model is not None:
            self._place(self._model)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> dict:
        """``{"output", "embedding"}`` (numpy) of a batch of preprocessed images."""
        model = self.model
        x = x.to(self._dev, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model.predict_step(x, 0)
        res = {"output": out[self.output].float().cpu().numpy() if self.output in out else None}
        res["embedding"] = out["embedding"].float().cpu().numpy()
        return res

    def extra(self, output, embedding) -> dict:
        """Further catalog columns of the method (e.g. ``unknown``)."""
        return self.model.extra_columns(output, embedding)

    def predict(self, ds, rows=None, *, batch_size: int = 256, num_workers: int = 0, embed: bool = True) -> dict:
        """``{"output": [n, K] or None, "embedding": [n, D] or None}`` of ``rows`` of ``ds`` (default: all)."""
        from torch.utils.data import DataLoader

        from labelsky.data.datasets import ImageDataset

        rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
        loader = DataLoader(ImageDataset(ds, indices=rows, transform=self.preprocess(ds)), batch_size=batch_size,
                            shuffle=False, num_workers=num_workers)
        outs, embs = [], []
        for x, _ in loader:
            res = self(x)
            if res["output"] is not None:
                outs.append(res["output"])
            if embed:
                embs.append(res["embedding"])
        n_out = len(self.class_names)
        output = None if self.output == "embedding" else \
            (np.concatenate(outs) if outs else np.zeros((0, n_out), np.float32))
        embedding = (np.concatenate(embs) if embs else np.zeros((0, 0), np.float32)) if embed else None
        return {"output": output, "embedding": embedding}


def predict(model, ds, rows=None, *, domain: str = "target", device: str | None = "auto", batch_size: int = 256,
            num_workers: int = 0, embed: bool = True) -> dict:
    """The outputs and embeddings of ``rows`` of ``ds`` by ``model`` (a trained model or a run folder); see
    :meth:`Predictor.predict`."""
    return Predictor(model, device=device, domain=domain).predict(ds, rows, batch_size=batch_size,
                                                                  num_workers=num_workers, embed=embed)
