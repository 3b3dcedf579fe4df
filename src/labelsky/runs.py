"""Run folders: open the trained model of any method's run.

A *run* is a folder with ``config.json`` (whose ``method`` names a method of
the registry, :mod:`labelsky.methods.registry`; ``transfer`` for runs older
than that field) and ``checkpoints/`` (``best.ckpt``, else ``last.ckpt``). See
:mod:`labelsky.methods.run` for the lifecycle every method shares.
"""

from __future__ import annotations

from pathlib import Path

from labelsky.methods.registry import MethodSpec, get_method
from labelsky.methods.run import Run

__all__ = ["run_checkpoint", "run_method", "run_spec", "load_run", "input_warnings"]


def run_checkpoint(run: str | Path) -> Path:
    """The checkpoint a run's predictions come from: ``best.ckpt``, else ``last.ckpt``."""
    return Run(run).best_checkpoint()


def run_method(run: str | Path) -> str:
    """The registered method name of a run folder."""
    return Run(run).read_config().get("method") or "transfer"


def run_spec(run: str | Path) -> MethodSpec:
    """The :class:`~labelsky.methods.registry.MethodSpec` of a run folder's method."""
    return get_method(run_method(run))


def load_run(run: str | Path):
    """The best model of a run folder (any registered method), in eval mode."""
    ckpt = run_checkpoint(run)
    return run_spec(run).load(ckpt)


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
