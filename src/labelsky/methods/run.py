"""One run lifecycle shared by every method.

A *run* is a folder:

    RUN/.labelsky              marker: labelsky made this folder (see labelsky.outputs)
    RUN/config.json            method, labelsky version, settings, the data it was trained on
    RUN/checkpoints/best.ckpt  the model predictions come from (best by the method's monitored metric)
    RUN/checkpoints/last.ckpt  where an interrupted run resumes
    RUN/logs/, figures/, eval.json, ...

:meth:`Run.start` is the one way a method opens its run folder. It

- creates the folder, or with ``overwrite`` replaces it when labelsky made it
  and it is not an input (:func:`labelsky.outputs.prepare_output`);
- refuses to resume a run whose checkpoints were made with other settings,
  another method or other data, naming what differs (settings in
  :data:`RESUMABLE` may change: more epochs, another device);
- seeds every random generator;
- writes ``config.json``.

Every checkpoint labelsky opens goes through :func:`load_checkpoint`
(``weights_only=True``, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says),
including the checkpoint Lightning resumes from (:meth:`Run.fit` checks it
first and passes ``weights_only=True`` to Lightning). A truncated, corrupt or
foreign checkpoint is a :class:`~labelsky.errors.RunFolderError`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from labelsky.errors import RunFolderError, unreadable_reason
from labelsky.outputs import prepare_output
from labelsky.utils import atomic_write_json, is_rank_zero

__all__ = ["Run", "RESUMABLE", "load_checkpoint", "load_state", "config_differences", "CONFIG_FILE",
           "run_checkpoint", "run_method", "run_spec", "load_run", "input_warnings"]

CONFIG_FILE = "config.json"

log = logging.getLogger(__name__)

#: settings that may change when a run resumes: how long, where and how fast it trains, not what it learns (a
#: method's settings name more with ``resumable=True``, see :mod:`labelsky.methods.settings`)
RESUMABLE = frozenset({"max_epochs", "device", "num_workers", "patience", "devices", "num_nodes", "strategy"})


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint's contents, loaded safely (tensors and plain containers only, never code).

    Raises :class:`RunFolderError` when the file is missing, truncated,
    corrupt, holds anything but tensors and plain data, or is not a
    labelsky / Lightning checkpoint (no ``state_dict`` and ``hyper_parameters``).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files; all mean the same here
        raise RunFolderError(f"checkpoint {path} cannot be read safely (truncated, corrupt, or holding more than "
                             f"weights): {unreadable_reason(err)}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise RunFolderError(f"{path} is not a labelsky checkpoint (no state_dict / hyper_parameters)")
    return ckpt


def load_state(model, ckpt: dict, path: str | Path = "checkpoint") -> None:
    """``model.load_state_dict(ckpt["state_dict"])``, a :class:`RunFolderError` when they do not fit."""
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise RunFolderError(f"{path} does not fit its model (a foreign or damaged checkpoint): {first[:200]}") \
            from None


def _jsonable(x: Any):
    return json.loads(json.dumps(x, default=str))


# settings added after runs were made, with the value that reproduces those runs: a run folder whose config
# predates one of them compares equal when the new value is this one
ADDED_SETTINGS = {"render": None, "jpeg_quality": None, "randomise": None}


def config_differences(old: dict, new: dict, prefix: str = "", ignore=RESUMABLE,
                       defaults: dict | None = None) -> list[str]:
    """``key: old -> new`` for every key (outside ``ignore``) whose value differs. A key missing from ``old``
    (a setting added after the run was made) counts as its value in ``defaults``, else in
    :data:`ADDED_SETTINGS`."""
    defaults = {**ADDED_SETTINGS, **_jsonable(defaults or {})}
    diffs = []
    for k in sorted(set(old) | set(new)):
        if k in ignore:
            continue
        a, b = old.get(k, defaults.get(k, "<unset>")), new.get(k, "<unset>")
        if a != b:
            diffs.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return diffs


def _resolved(config: dict) -> dict:
    """What a config's shorthand stood for when the run was made (recorded beside it, never compared on resume):
    ``randomise_resolved``, every field of the training nuisance randomisation (``randomise = {}`` means the
    defaults of this version)."""
    if not isinstance(config.get("randomise"), dict):
        return {}
    import dataclasses

    from labelsky.data.transforms import NuisanceRandomisation

    return {"randomise_resolved": _jsonable(dataclasses.asdict(NuisanceRandomisation.from_dict(config["randomise"])))}


class Run:
    """A run folder of one method (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def checkpoint_dir(self, stage: str = "") -> Path:
        return (self.path / stage if stage else self.path) / "checkpoints"

    def has_checkpoints(self) -> bool:
        return self.path.is_dir() and any(self.path.glob("**/checkpoints/*.ckpt"))

    def read_config(self) -> dict:
        if not self.path.is_dir():
            raise RunFolderError(f"no such run folder: {self.path}")
        if not self.config_path.is_file():
            raise RunFolderError(f"{self.path} is not a labelsky run (no {CONFIG_FILE}); train into it first")
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{self.config_path} cannot be read: {err}") from None

    def best_checkpoint(self) -> Path:
        """The checkpoint a run's predictions come from: ``best.ckpt``, else ``last.ckpt``."""
        for name in ("best.ckpt", "last.ckpt"):
            if (self.checkpoint_dir() / name).is_file():
                return self.checkpoint_dir() / name
        if not self.path.is_dir():
            raise RunFolderError(f"no such run folder: {self.path}")
        raise RunFolderError(f"{self.path}: no checkpoint in {self.checkpoint_dir()}; train first")

    # ------------------------------------------------------------------ start
    @classmethod
    def start(cls, path: str | Path, *, method: str, config, data: Any, seed: int | None = None,
              overwrite: bool = False, inputs: Sequence[str | Path] = (), extra: dict | None = None) -> "Run":
        """Open ``path`` for training ``method`` with ``config`` on ``data`` (see the module docstring).

        ``config``: the method's settings (a :class:`~labelsky.methods.settings.Settings`, whose resumable
        fields may change, or a dict); ``data`` identifies the training data (e.g.
        :func:`labelsky.methods.parts.describe_parts`); ``inputs`` are paths the run reads (never replaced);
        ``extra`` goes into ``config.json`` as it is.
        """
        from labelsky._version import __version__

        run = cls(path)
        if not is_rank_zero():
            # another process of a distributed run (Lightning re-launches the command once per device): rank 0
            # has prepared the folder and written config.json; this one only seeds
            if seed is not None:
                import lightning as L

                L.seed_everything(seed, workers=True, verbose=False)
            return run
        prepare_output(run.path, overwrite=overwrite, inputs=inputs, kind="run")
        ignore, defaults = RESUMABLE, {}
        if hasattr(config, "to_dict"):
            ignore, defaults = RESUMABLE | config.resumable_fields(), config.defaults()
            config = config.to_dict()
        config, data = _jsonable(config), _jsonable(data)
        if run.has_checkpoints():
            if not run.config_path.is_file():
                raise RunFolderError(f"{run.path} holds checkpoints but no {CONFIG_FILE}: choose another run "
                                     f"folder or pass --overwrite")
            old = run.read_config()
            if old.get("method") != method:
                raise RunFolderError(f"{run.path} holds a {old.get('method')!r} run, not a {method!r} one: choose "
                                     f"another run folder (or pass --overwrite to replace it)")
            diffs = config_differences(old.get("config", {}), config, "", ignore=ignore, defaults=defaults)
            if old.get("data") != data:
                old_data = old.get("data") if isinstance(old.get("data"), dict) else {}
                parts = sorted(k for k in set(old_data) | set(data if isinstance(data, dict) else {})
                               if old_data.get(k) != data.get(k)) if isinstance(data, dict) else []
                diffs.append(f"data: {', '.join(parts) or 'the datasets'} (other datasets, rows or labels)")
            if diffs:
                raise RunFolderError(f"{run.path} holds a run made with other settings ({'; '.join(diffs)}); "
                                     f"resuming it would mix them: choose another run folder or pass --overwrite")
        if seed is not None:
            import lightning as L

            L.seed_everything(seed, workers=True, verbose=False)
        atomic_write_json(run.config_path, {"method": method, "labelsky_version": __version__, "config": config,
                                            "data": data, **_resolved(config), **_jsonable(extra or {})})
        return run

    def record(self, **fields) -> None:
        """Add ``fields`` (e.g. the weights a model was built from) to ``config.json``."""
        config = self.read_config()
        config.update(_jsonable(fields))
        atomic_write_json(self.config_path, config)

    # ------------------------------------------------------------------ fit
    def resume_checkpoint(self, stage: str = "") -> str | None:
        """``last.ckpt`` of ``stage`` to resume from (checked to load safely), or ``None``.

        A ``last.ckpt`` that cannot be read (truncated by a full disk under an
        older version, damaged) falls back to ``best.ckpt``, the previous good
        state, with a warning; without a readable one the run is refused with
        the remedy.
        """
        last = self.checkpoint_dir(stage) / "last.ckpt"
        if not last.is_file():
            return None
        try:
            load_checkpoint(last)
            return str(last)
        except RunFolderError as err:
            best = self.checkpoint_dir(stage) / "best.ckpt"
            try:
                epoch = int(load_checkpoint(best).get("epoch", -1)) + 1
            except RunFolderError:
                raise RunFolderError(f"{err}; no readable best.ckpt beside it to resume from: pass --overwrite to "
                                     f"start the run again") from None
            import warnings

            from labelsky.errors import LabelskyWarning

            warnings.warn(f"{err}; resuming from {best} instead (after epoch {epoch}): the epochs since are trained "
                          f"again", LabelskyWarning, stacklevel=2)
            return str(best)

    def fit(self, trainer, module, train_loader, val_loader=None, stage: str = "") -> Path:
        """``trainer.fit``, resuming from ``last.ckpt`` when present (safe load); returns the best checkpoint.

        A run that already trained at least ``max_epochs`` epochs is not trained again (its best checkpoint
        is returned). Ctrl-C during training is a ``KeyboardInterrupt`` (Lightning turns it into an exit).
        """
        ckpt = self.resume_checkpoint(stage)
        if ckpt is not None and trainer.max_epochs is not None and trainer.max_epochs >= 0:
            done = int(load_checkpoint(ckpt).get("epoch", -1)) + 1
            if done >= trainer.max_epochs:
                log.info(f"{self.checkpoint_dir(stage).parent} already trained {done} epoch(s) (asked: "
                         f"{trainer.max_epochs}); nothing to train")
                best = self.checkpoint_dir(stage) / "best.ckpt"
                return best if best.is_file() else Path(ckpt)
        from labelsky.methods.epochs import EpochSeeding

        for cb in getattr(trainer, "callbacks", ()):  # its samplers resume at the checkpoint's epoch
            if isinstance(cb, EpochSeeding):
                cb.watch(train_loader)
        try:
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
        except SystemExit:
            if getattr(trainer, "interrupted", False):  # Lightning's graceful shutdown after Ctrl-C
                raise KeyboardInterrupt from None
            raise
        if getattr(trainer, "interrupted", False):
            raise KeyboardInterrupt
        best = trainer.checkpoint_callback.best_model_path
        return Path(best) if best else self.checkpoint_dir(stage) / "last.ckpt"


# ---------------------------------------------------------------------- reading a run
def run_checkpoint(run: str | Path) -> Path:
    """The checkpoint a run's predictions come from: ``best.ckpt``, else ``last.ckpt``."""
    return Run(run).best_checkpoint()


def run_method(run: str | Path) -> str:
    """The registered method name of a run folder."""
    return Run(run).read_config().get("method") or "transfer"


def run_spec(run: str | Path):
    """The :class:`~labelsky.methods.registry.MethodSpec` of a run folder's method."""
    from labelsky.methods.registry import get_method

    return get_method(run_method(run))


def load_run(run: str | Path):
    """The best model of a run folder (any registered method), in eval mode."""
    return run_spec(run).load(run_checkpoint(run))


def input_warnings(run: str | Path, ds) -> list[str]:
    """Why ``ds`` may not be what the run's model was trained on: other pixel units (flux images vs 8-bit
    pictures) or another image size. Empty when they match or the run does not record its data."""
    record = Run(run).read_config()
    data = record.get("data") or {}
    rendered = bool((record.get("config") or {}).get("render"))  # flux rendered as pictures: both units fit
    seen = []

    def walk(x):
        if isinstance(x, dict):
            if "flux_unit" in x and "image_shape" in x:
                seen.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    if not seen:
        return []
    out = []
    units = sorted({d["flux_unit"] for d in seen})
    unit = ds.meta.get("flux_unit", "nanomaggy")
    if unit not in units and not (rendered and unit in ("display", "nanomaggy")):
        out.append(f"{ds.path} holds {unit} images; the model of {run} was trained on {', '.join(units)} images "
                   f"(flux images and 8-bit pictures look different to a network)")
    sizes = sorted({tuple(d["image_shape"][1:]) for d in seen})
    if tuple(ds.image_shape[1:]) not in sizes:
        side = (record.get("config") or {}).get("image_size")
        resized = f", both resized to the model's {side} x {side}" if side else ""
        out.append(f"{ds.path} has {ds.image_shape[1]} x {ds.image_shape[2]} pixel images; the model of {run} "
                   f"was trained on datasets of {', '.join(f'{h} x {w}' for h, w in sizes)} pixel images{resized} "
                   f"(a galaxy then spans another number of the model's pixels unless the cutouts are framed alike)")
    return out
