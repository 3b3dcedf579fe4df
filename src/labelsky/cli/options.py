"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelsky.errors import SettingsError

__all__ = ["add_out", "add_seed", "add_overwrite", "add_device", "add_distributed", "dist", "rank_zero",
           "positive_int", "non_negative_int", "positive_float", "at_least_2", "fraction", "OneLineParser"]


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


def add_distributed(p) -> None:
    """Lightning's devices / nodes / strategy for a training command."""
    g = p.add_argument_group("several devices or nodes (Lightning)")
    g.add_argument("--devices", default=None, help="devices per node: a count (CPU processes or GPUs), or 'auto' "
                                                   "(default: one)")
    g.add_argument("--num-nodes", type=int, default=1, help="nodes (launch one process per node, e.g. with "
                                                            "torchrun or SLURM's srun)")
    g.add_argument("--strategy", default="auto", help="e.g. ddp (data-parallel: each process sees 1/N of the data, "
                                                      "gradients averaged; gloo on CPU, NCCL on GPU)")


def rank_zero() -> bool:
    """After a distributed fit, only rank 0 evaluates and writes; the other processes stop here."""
    from labelsky.training import is_global_zero

    return is_global_zero()


def dist(a) -> dict:
    """The distributed settings of parsed arguments, for a method config."""
    devices = a.devices
    if devices is not None and devices != "auto":
        try:
            devices = int(devices)
        except ValueError:
            raise SettingsError(f"--devices must be a count or 'auto', got {devices!r}") from None
    return {"devices": devices, "num_nodes": a.num_nodes, "strategy": a.strategy}
