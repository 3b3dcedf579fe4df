"""The reproductions registry: every paper's experiment on the simulator, by name.

A reproduction is a module of :mod:`labelsky.reproduce` that defines
``REPRODUCTION = Reproduction(...)``: its settings (a dataclass with a
``quick()`` constructor), the function that runs it into a folder, the table
it writes, and which command-line options set which of its settings.
``labelsky reproduce NAME`` resolves through :func:`get_reproduction`; adding a
reproduction means adding its module (and its name to :data:`MODULES`).
Reproductions train through the methods' own ``fit`` (:mod:`labelsky.methods`);
the measures only a paper uses (Khan et al.'s HP / FO sets, occlusion maps)
live beside them here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from labelsky.errors import SettingsError

__all__ = ["Reproduction", "get_reproduction", "list_reproductions", "MODULES"]

#: reproduction name -> the module that defines its ``REPRODUCTION``
MODULES = {"khan2019": "labelsky.reproduce.khan2019", "deepastrouda": "labelsky.reproduce.deepastrouda",
           "etvae": "labelsky.reproduce.etvae", "owg": "labelsky.reproduce.owg"}


@dataclass(frozen=True)
class Reproduction:
    """What labelsky knows of one reproduction.

    Attributes
    ----------
    name
        ``labelsky reproduce NAME``.
    config_cls
        Its settings: a dataclass with ``quick(**overrides)``, a version that runs in minutes.
    run
        ``run(out, config, progress=True) -> results``; writes ``out/results.json`` and ``out/<table>``.
    table
        The Markdown table it writes (printed by the command).
    options
        Command-line option (``dest``) -> settings field, for the options it takes.
    out
        ``out(options) -> folder name`` under ``runs/`` when ``--out`` is not given.
    description
        One line for listings.
    """

    name: str
    config_cls: type
    run: Callable
    table: str
    options: dict = field(default_factory=dict)
    out: Callable[[dict], str] | None = None
    description: str = ""

    def default_out(self, given: dict) -> str:
        return self.out(given) if self.out is not None else self.name

    def config(self, given: dict, quick: bool = False):
        """Its settings from the options given (``{dest: value}``, ``None`` = not given); an option it does not
        take is a :class:`SettingsError`."""
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.options)
        if unknown:
            names = ", ".join("--" + k.replace("_", "-") for k in unknown)
            takes = ", ".join("--" + k.replace("_", "-") for k in sorted(self.options))
            raise SettingsError(f"reproduce {self.name} takes no {names} (its options: {takes})")
        kw = {self.options[k]: v for k, v in given.items() if v is not None}
        return self.config_cls.quick(**kw) if quick else self.config_cls(**kw)


def list_reproductions() -> list[str]:
    """Names of the reproductions."""
    return sorted(MODULES)


def get_reproduction(name: str) -> Reproduction:
    """The :class:`Reproduction` named ``name``."""
    if name not in MODULES:
        raise SettingsError(f"unknown reproduction {name!r}; expected one of {', '.join(list_reproductions())}")
    return importlib.import_module(MODULES[name]).REPRODUCTION
