"""What a catalog is made from: a model that turns a preprocessed batch into columns.

:class:`RunPredictor` is a picklable recipe: it holds the run folder and
settings, not the model, and loads the model in whichever process first calls
it (the local engine's process or each Ray actor), on that process's device
(``auto``: the GPU it was given, else the CPU). Batches run under
``torch.inference_mode`` in channels-last memory format.

Every predictor answers ``(x) -> {"probs": [N, K], "embedding": [N, D]}``
(numpy; ``probs`` holds the method's output: probabilities, vote fractions
or regression values) and has ``class_names`` and
``extra(probs, embedding) -> columns``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labelsky.utils import default_device

__all__ = ["RunPredictor", "FunctionPredictor"]


class FunctionPredictor:
    """A plain function ``predict_fn(x) -> {"probs", "embedding"}`` with its class names (local engine)."""

    def __init__(self, predict_fn, class_names, extra=None):
        self.fn, self.class_names, self._extra = predict_fn, list(class_names), extra

    def __call__(self, x: torch.Tensor) -> dict:
        return self.fn(x)

    def extra(self, probs, embedding) -> dict:
        return self._extra(probs, embedding) if self._extra is not None else {}


class RunPredictor:
    """Predictions of a run folder's best model, for any registered method.

    The method's :class:`~labelsky.methods.registry.MethodSpec` says which
    output of ``predict_step`` the catalog's columns come from (class
    probabilities, vote fractions or regression values), their names, any
    further columns (``unknown`` for domain adaptation) and how the model is
    prepared (``domain``: adapted models use the target's batch-norm
    statistics by default, ``source`` for the source's).
    """

    def __init__(self, run: str | Path, device: str = "auto", domain: str = "target", channels_last: bool = True):
        from labelsky.errors import SettingsError
        from labelsky.runs import run_spec

        if domain not in ("source", "target"):
            raise SettingsError(f"domain must be 'source' or 'target', got {domain!r}")
        self.run, self.device, self.domain, self.channels_last = Path(run), device, domain, channels_last
        self.spec = run_spec(self.run)
        self._model = None
        self._dev = None
        model = self.model  # read the output names here (cheap), before any pickling
        self.kind = self.spec.name
        self.output = self.spec.output
        self.class_names = list(self.spec.output_names(model))

    @property
    def model(self):
        if self._model is None:
            from labelsky.runs import load_run

            model = load_run(self.run)
            self._dev = torch.device(default_device(None if self.device == "auto" else self.device))
            model = model.to(self._dev).eval()
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
            if self.spec.prepare is not None:
                self.spec.prepare(model, self.domain)
            self._model = model
        return self._model

    def preprocess(self, ds):
        """The preprocessing the model was trained with, for the images of ``ds``."""
        return self.spec.preprocess(self.model, ds)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"], state["_dev"] = None, None  # every process loads its own copy on its own device
        return state

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> dict:
        model = self.model
        x = x.to(self._dev, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model.predict_step(x, 0)
        res = {"probs": out[self.output].float().cpu().numpy()}
        if "embedding" in out:
            res["embedding"] = out["embedding"].float().cpu().numpy()
        return res

    def extra(self, probs: np.ndarray, embedding) -> dict:
        if self.spec.extra_columns is None:
            return {}
        return self.spec.extra_columns(self.model, probs)
