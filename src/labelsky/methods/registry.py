"""The method registry: every method registers once, by name; training and reading runs resolve through it.

A method is a package under ``labelsky/methods/`` (or a module registered
through the ``labelsky.methods`` entry-point group) that calls
:func:`register_method` with a :class:`MethodSpec`: its settings, its model,
the datasets it takes, how it picks their rows, how it trains a run folder,
and a tiny smoke configuration. The package's ``__init__`` imports only its
settings (no torch); the rest is imported when a method is used. From the specs come the training commands
(``labelsky train``, ``adapt``, ``semisup``, ``pretrain``, ``richness``: one
generated command per method), :func:`train`, ``load_run``, catalogs,
evaluation and clustering; adding a method means adding one package (see
``docs/architecture.md``).

Prediction contract: ``model.predict_step(x)`` of every method's model (a
:class:`~labelsky.methods.base.LabelskyModule`) returns a dict with the
model's ``output`` key --

``"probs"``      class probabilities ``[N, K]`` (columns named by ``model.output_names()``),
``"fractions"``  predicted vote fractions ``[N, K]``,
``"values"``     regression values ``[N, K]`` (e.g. ``ln`` richness, ``K = 1``),
``"embedding"``  no further output (a self-supervised extractor),

and ``"embedding"`` ``[N, D]``, the vector a catalog stores on request and maps cluster.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from labelsky.errors import SettingsError

__all__ = ["MethodSpec", "DataRole", "Fitted", "register_method", "get_method", "list_methods", "train",
           "open_inputs", "run_lock", "OUTPUTS"]

OUTPUTS = ("probs", "fractions", "values", "embedding")

_REGISTRY: dict[str, "MethodSpec"] = {}
_DISCOVERED = False


@dataclass(frozen=True)
class DataRole:
    """A dataset argument of a method: ``--<name> DATASET`` (``many``: one or more folders)."""

    name: str
    help: str
    many: bool = False
    required: bool = True


class Fitted(NamedTuple):
    """What ``fit`` returns: the best model (eval mode) and the run's report (also in the run folder)."""

    model: Any
    report: dict


def _resolve(ref: str):
    """The object a ``"package.module:name"`` reference names (imported on first use)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class MethodSpec:
    """What labelsky knows of one method.

    A spec is light: its settings class is imported with it, its model and
    training code only when first used (``model``, ``implementation``), so
    that listing methods and building the command line need no torch.

    Attributes
    ----------
    name
        The name in ``config.json`` and the registry.
    config_cls
        Its settings (a :class:`~labelsky.methods.settings.Settings` dataclass whose fields declare their
        command-line options).
    model
        ``"package.module:Class"`` of its model, a :class:`~labelsky.methods.base.LabelskyModule`
        (:attr:`module_cls`; ``module_cls.load(checkpoint)``).
    implementation
        The module defining its ``select_rows``, ``fit`` and ``summary``:

        ``select_rows(datasets, cfg) -> {part name: [Part, ...]}``: which rows of which datasets train,
        validate and test (``datasets``: ``{role: [dataset, ...]}``); every row choice is in ``cfg``;
        ``fit(run_dir, parts, cfg, *, overwrite=False, progress=True) -> Fitted``: trains a run folder on the
        parts (resumable; see :class:`labelsky.methods.run.Run`) and evaluates what it can;
        ``summary(run_dir, report) -> lines`` the command prints after training.
    inputs
        The datasets it takes (:class:`DataRole`), e.g. ``data``; ``source`` and ``target``.
    output
        What its predictions are (one of :data:`OUTPUTS`; its model's ``output``).
    smoke
        ``smoke(device) -> cfg``: a tiny configuration that trains in seconds (the registry's tests).
    command
        The command-line name of its training command (default: ``name``).
    variants
        Named variants chosen through the config (e.g. ``uda``: deepastrouda, dance, source_only).
    cli_exclude
        Settings its command does not offer (e.g. a rendering for a method that reads single bands).
    description
        One line for ``--help`` and listings.
    """

    name: str
    config_cls: type
    model: str
    implementation: str
    inputs: tuple
    output: str
    smoke: Callable[[str], Any]
    command: str | None = None
    variants: tuple = field(default_factory=tuple)
    cli_exclude: tuple = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self):
        if self.command is None:
            object.__setattr__(self, "command", self.name)
        if self.output not in OUTPUTS:
            raise ValueError(f"method {self.name!r}: output {self.output!r} is not one of {OUTPUTS}")

    @property
    def module_cls(self) -> type:
        """Its model class."""
        return _resolve(self.model)

    @property
    def select_rows(self) -> Callable[..., dict]:
        return _resolve(f"{self.implementation}:select_rows")

    @property
    def fit(self) -> Callable[..., Fitted]:
        return _resolve(f"{self.implementation}:fit")

    @property
    def summary(self) -> Callable[[Path, dict], list]:
        return _resolve(f"{self.implementation}:summary")

    def load(self, checkpoint):
        """The model of a checkpoint, safely loaded, in eval mode."""
        return self.module_cls.load(checkpoint)


def register_method(spec: MethodSpec) -> MethodSpec:
    """Register ``spec`` under ``spec.name`` (once: another method of the same name or command is an error)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old.model != spec.model:
        raise ValueError(f"a method named {spec.name!r} is already registered ({old.model})")
    for other in _REGISTRY.values():
        if other.name != spec.name and other.command == spec.command:
            raise ValueError(f"method {spec.name!r}: the command {spec.command!r} belongs to {other.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every package under ``labelsky.methods`` and every ``labelsky.methods`` entry point once: each
    registers its methods."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import labelsky.methods as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group="labelsky.methods"):
        ep.load()


def list_methods() -> list[str]:
    """Names of the registered methods."""
    _discover()
    return sorted(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name``."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SettingsError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}") from None


def open_inputs(spec: MethodSpec, paths: dict) -> dict:
    """``{role: [dataset, ...]}`` of ``{role: path or [paths]}`` (roles not given and not required: ``[]``)."""
    from labelsky.data.io import LabelskyDataset, open_dataset

    out = {}
    for role in spec.inputs:
        given = paths.get(role.name)
        if given is None:
            if role.required:
                raise SettingsError(f"method {spec.name!r} needs --{role.name} ({role.help})")
            out[role.name] = []
            continue
        given = given if isinstance(given, (list, tuple)) else [given]
        out[role.name] = [g if isinstance(g, LabelskyDataset) else open_dataset(g) for g in given]
    unknown = sorted(set(paths) - {r.name for r in spec.inputs})
    if unknown:
        raise SettingsError(f"method {spec.name!r} takes {', '.join(r.name for r in spec.inputs)}, not {unknown}")
    return out


def train(method: str | MethodSpec, run_dir, datasets: dict, cfg=None, *, overwrite: bool = False,
          progress: bool = True) -> Fitted:
    """Train ``method`` into the run folder ``run_dir``: its rows of ``datasets`` (``{role: dataset(s) or
    path(s)}``, e.g. ``{"data": "sim/sdss"}``), then its ``fit``. ``cfg``: its settings (default: the defaults).

    The same call resumes an interrupted run; other settings or data are refused (``overwrite`` replaces a
    run labelsky made); while it trains, ``RUN.lock`` keeps a second training of the same folder out. Returns
    the best model and the run's report.
    """
    spec = method if isinstance(method, MethodSpec) else get_method(method)
    cfg = cfg if cfg is not None else spec.config_cls()
    if not isinstance(cfg, spec.config_cls):
        raise SettingsError(f"method {spec.name!r} takes {spec.config_cls.__name__}, not {type(cfg).__name__}")
    data = open_inputs(spec, datasets)
    parts = spec.select_rows(data, cfg)
    with run_lock(run_dir):  # a second training into the same run folder stops at once, naming this one
        return spec.fit(run_dir, parts, cfg, overwrite=overwrite, progress=progress)


def run_lock(run_dir):
    """The lock of a run folder while a command trains it (``RUN.lock`` beside it; see
    :class:`labelsky.outputs.OutputLock`); only rank 0 of a distributed run takes it."""
    import contextlib

    from labelsky.errors import RunFolderError
    from labelsky.outputs import OutputLock
    from labelsky.utils import is_rank_zero

    return OutputLock(run_dir, doing="trained", error=RunFolderError) if is_rank_zero() else contextlib.nullcontext()
