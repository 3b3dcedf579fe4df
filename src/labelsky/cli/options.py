"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelsky.errors import SettingsError

__all__ = ["add_out", "add_seed", "add_overwrite", "add_device", "add_distributed", "dist", "rank_zero",
           "positive_int", "non_negative_int", "positive_float", "at_least_2", "fraction", "OneLineParser",
           "add_render", "render_settings"]


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


def add_render(p) -> None:
    """``--render``, ``--jpeg-quality``, ``--randomise``: train on simulated flux rendered as viewer pictures."""
    p.add_argument("--render", default=None, metavar="VIEWER",
                   help="render flux images as this survey viewer shows them (sdss, legacysurvey, hsc): the model "
                        "then takes 8-bit RGB pictures (Galaxy Zoo, Galaxy10, viewer JPEGs) as they are")
    p.add_argument("--jpeg-quality", type=_quality, default=None, help="with --render: JPEG-compress every "
                   "rendered picture at this quality (1-100)")
    p.add_argument("--randomise", nargs="?", const="", default=None, metavar="NAME=VALUE,...",
                   help="with --render: random nuisances on every rendered training image (brightness, colour "
                        "balance, blur, noise, sky residual, JPEG; display black level, contrast, gamma when asked); "
                        "optional overrides, e.g. 'blur=1.5,noise=2,jpeg_quality=40:95,black=0:0.12'")


def _quality(text: str) -> int:
    value = _int_at_least(text, 1)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{value} must be <= 100")
    return value


def render_settings(a) -> dict:
    """The InputSettings fields of :func:`add_render`'s options."""
    if a.randomise is not None and not a.render:
        raise SettingsError("--randomise needs --render (the nuisances are drawn on rendered pictures)")
    if a.jpeg_quality is not None and not a.render:
        raise SettingsError("--jpeg-quality needs --render")
    if a.render:
        from labelsky.data.display import RENDERERS

        if a.render not in RENDERERS:
            raise SettingsError(f"--render {a.render!r}: expected one of {', '.join(sorted(RENDERERS))}")
    rand = None
    if a.randomise is not None:
        from labelsky.data.transforms import NuisanceRandomisation

        rand = {}
        fields = {f for f in NuisanceRandomisation.__dataclass_fields__}
        for item in filter(None, (x.strip() for x in a.randomise.split(","))):
            name, _, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if name not in fields or not value:
                raise SettingsError(f"--randomise {item!r}: expected NAME=VALUE with NAME one of "
                                    f"{', '.join(sorted(fields))}")
            try:
                nums = [float(v) for v in value.split(":")]
            except ValueError:
                raise SettingsError(f"--randomise {item!r}: {value!r} is not a number or LOW:HIGH") from None
            if name in ("brightness", "jpeg_quality", "black", "contrast") and len(nums) != 2:
                raise SettingsError(f"--randomise {name}: expected LOW:HIGH, got {value!r}")
            if name == "jpeg_quality":
                nums = [int(v) for v in nums]
            rand[name] = nums if len(nums) == 2 else nums[0]
        NuisanceRandomisation(**{k: tuple(v) if isinstance(v, list) else v for k, v in rand.items()})  # checked
    return {"render": a.render, "jpeg_quality": a.jpeg_quality, "randomise": rand}
