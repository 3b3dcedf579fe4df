"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["add_out", "add_seed", "add_overwrite", "add_device", "rank_zero", "positive_int", "non_negative_int",
           "positive_float", "at_least_2", "fraction", "percent", "OneLineParser", "add_settings",
           "settings_from_args", "CHECK_TYPES"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, ``labelsky: error: ...``, and exit code 2; options are
    never abbreviated (``--dat`` is a mistake, not ``--data``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"labelsky: error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    return _int_at_least(text, 0)


def at_least_2(text: str) -> int:
    """An integer >= 2 (argparse type), e.g. cross-validation folds."""
    return _int_at_least(text, 2)


def positive_float(text: str) -> float:
    """A number > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be > 0")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (argparse type)."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be in (0, 1]")
    return value


def add_out(p, what: str = "output folder", required: bool = True, default=None) -> None:
    p.add_argument("--out", "-o", required=required, type=Path, default=default, help=what)


def add_seed(p, help: str = "random seed") -> None:
    p.add_argument("--seed", type=int, default=0, help=f"{help} (default 0)")


def add_overwrite(p) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output if labelsky made it (never an input, never a folder labelsky did not "
                        "make); without it an unfinished output with the same settings resumes")


def add_device(p, workers: bool = True) -> None:
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one, else the CPU), cpu, cuda, "
                                                    "cuda:1 ...")
    if workers:
        p.add_argument("--workers", type=non_negative_int, default=0, help="data-loader processes")


def rank_zero() -> bool:
    """After a distributed fit, only rank 0 evaluates and writes; the other processes stop here."""
    from labelsky.methods.training import is_global_zero

    return is_global_zero()


def percent(text: str) -> int:
    """An integer in 1..100 (argparse type), e.g. a JPEG quality."""
    value = _int_at_least(text, 1)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{value} must be <= 100")
    return value


#: argparse types of the value checks a setting may name (labelsky.methods.settings.CHECKS)
CHECK_TYPES = {"positive_int": positive_int, "non_negative_int": non_negative_int, "positive_float": positive_float,
               "fraction": fraction, "at_least_2": at_least_2, "percent": percent}


def _base_type(annotation) -> type:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    first = text.replace(" ", "").split("|")[0]
    return {"int": int, "float": float}.get(first, str)


def add_settings(p, config_cls, exclude=()) -> None:
    """One option per field of ``config_cls`` that declares one (:func:`labelsky.methods.settings.setting`).

    An option left out keeps the setting's default (argparse stores nothing), so a default exists once, in
    the settings class. Values a library grammar reads (``parse``) are parsed by :func:`settings_from_args`.
    """
    groups = {}
    own = set(getattr(config_cls, "__annotations__", {}))  # the method's own settings first, then the shared ones
    for f in sorted(dataclasses.fields(config_cls), key=lambda f: f.name not in own):
        meta = config_cls.option_of(f.name)
        if f.name in exclude or not meta.get("help"):
            continue
        group = meta.get("group")
        target = p if not group else groups.setdefault(group, p.add_argument_group(group))
        dashed = f.name.replace("_", "-")
        kw = {"dest": f"setting_{f.name}", "default": argparse.SUPPRESS, "help": meta["help"]}
        if meta.get("negate"):
            flags, kw["action"] = [meta.get("flag") or f"--no-{dashed}"], "store_false"
        elif meta.get("const") is not dataclasses.MISSING:
            flags, kw["action"], kw["const"] = [meta.get("flag") or f"--{dashed}"], "store_const", meta["const"]
        elif meta.get("optional"):
            flags, kw["action"] = [meta.get("flag") or f"--{dashed}"], argparse.BooleanOptionalAction
        elif str(f.type).replace(" ", "").split("|")[0] == "bool":
            flags, kw["action"] = [meta.get("flag") or f"--{dashed}"], "store_true"
        else:
            flags = [meta.get("flag") or f"--{dashed}"]
            if meta.get("parse") is None:
                kw["type"] = CHECK_TYPES[meta["check"]] if meta.get("check") else _base_type(f.type)
            if meta.get("nargs"):
                kw["nargs"] = meta["nargs"]
                if meta["nargs"] == "?":
                    kw["const"] = ""
            if meta.get("choices"):
                kw["choices"] = meta["choices"]
            else:
                kw["metavar"] = meta.get("metavar") or flags[0].lstrip("-").replace("-", "_").upper()
        target.add_argument(*flags, **kw)


def settings_from_args(config_cls, a, **fixed):
    """The settings of parsed arguments: the options given (text read by the library's own grammar where the
    setting names one), every other field its default; ``fixed`` fields as given."""
    given = {}
    for f in dataclasses.fields(config_cls):
        if hasattr(a, f"setting_{f.name}"):
            value = getattr(a, f"setting_{f.name}")
            parse = config_cls.option_of(f.name).get("parse")
            given[f.name] = parse(value) if parse is not None and isinstance(value, str) else value
    return config_cls(**given, **fixed)
