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

__all__ = ["run_checkpoint", "run_method", "run_spec", "load_run"]


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
