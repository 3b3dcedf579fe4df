"""Lazy names of a method package: its ``__init__`` stays light (settings only) and imports its model and
training code when one of their names is first asked for (``from labelsky.methods.transfer import fit``)."""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: dict):
    """A module ``__getattr__`` that imports ``names[name]`` (a module of ``package``) on first use of ``name``."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
            globals_ = importlib.import_module(package).__dict__
            globals_[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
