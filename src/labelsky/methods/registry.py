"""The method registry: every method registers once, by name; everything else resolves through it.

A method is a package under ``labelsky/methods/`` whose ``__init__`` calls
:func:`register_method` with a :class:`MethodSpec`: its config class, its
model class, how it picks rows of datasets, how it trains a run folder, how
a checkpoint becomes a model, and what its predictions are. ``load_run``, the
catalog predictor, the CLI's choices and ``config.json``'s ``method`` field
all look methods up here, so adding a method means adding one package (see
``docs/architecture.md``).

Prediction contract: ``model.predict_step(x)`` of every registered method
returns a dict with the method's :attr:`MethodSpec.output` key --

``"probs"``      class probabilities ``[N, K]`` (columns named by :attr:`MethodSpec.output_names`),
``"fractions"``  predicted vote fractions ``[N, K]``,
``"values"``     regression values ``[N, K]`` (e.g. ``ln`` richness, ``K = 1``),

and ``"embedding"`` ``[N, D]``, the vector a catalog stores on request.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from labelsky.errors import SettingsError

__all__ = ["MethodSpec", "register_method", "get_method", "list_methods", "method_of_model", "OUTPUTS"]

OUTPUTS = ("probs", "fractions", "values")

_REGISTRY: dict[str, "MethodSpec"] = {}
_DISCOVERED = False


@dataclass(frozen=True)
class MethodSpec:
    """What labelsky knows of one method.

    Attributes
    ----------
    name
        The name in ``config.json`` and on the command line.
    config_cls
        Its settings (a dataclass with ``to_dict``).
    module_cls
        Its model (a Lightning module, or a ``torch.nn.Module``).
    select_rows
        ``select_rows(datasets, cfg, *, seed) -> dict`` of named parts
        ``(dataset, rows, labels or None)``: which rows train, validate, test.
    fit
        ``fit(run_dir, datasets, cfg, *, overwrite=False, progress=True) -> model``:
        selects the rows and trains a run folder (resumable; see
        :class:`labelsky.methods.run.Run`).
    load
        ``load(checkpoint) -> model`` in eval mode (safe load).
    output
        The key of the prediction (one of :data:`OUTPUTS`).
    output_names
        ``output_names(model) -> list[str]``: the name of every output column.
    extra_columns
        ``extra_columns(model, output) -> dict`` of further catalog columns
        (e.g. the ``unknown`` flag of domain adaptation), or ``None``.
    prepare
        ``prepare(model, domain)`` before predicting (e.g. which batch norms), or ``None``.
    preprocess
        ``preprocess(model, ds)``: the preprocessing of ``ds`` images the model was trained with.
    variants
        Named variants selected through the config (e.g. ``uda``: deepastrouda, dance, source_only).
    description
        One line for listings.
    """

    name: str
    config_cls: type
    module_cls: type
    select_rows: Callable[..., dict]
    fit: Callable[..., Any]
    load: Callable[..., Any]
    output: str = "probs"
    output_names: Callable[[Any], list] = lambda model: list(getattr(model.hparams, "class_names", []) or [])
    extra_columns: Callable[[Any, Any], dict] | None = None
    prepare: Callable[[Any, str], None] | None = None
    preprocess: Callable[[Any, Any], Any] = lambda model, ds: model.cfg.preprocess(ds)
    variants: tuple = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"method {self.name!r}: output {self.output!r} is not one of {OUTPUTS}")


def register_method(spec: MethodSpec) -> MethodSpec:
    """Register ``spec`` under ``spec.name`` (once: a second method of the same name is an error)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old.module_cls is not spec.module_cls:
        raise ValueError(f"a method named {spec.name!r} is already registered ({old.module_cls.__qualname__})")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every package under ``labelsky.methods`` once: each registers its methods."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import labelsky.methods as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _DISCOVERED = True


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


def method_of_model(model) -> MethodSpec:
    """The spec whose model class ``model`` is."""
    _discover()
    for spec in _REGISTRY.values():
        if isinstance(model, spec.module_cls):
            return spec
    raise SettingsError(f"{type(model).__qualname__} is not the model of a registered method")
