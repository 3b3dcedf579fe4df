"""Run folders: open the trained model of any method's run.

A *run* is a folder with ``config.json`` (whose ``method`` names the method:
``transfer`` when absent, ``uda``, ``semisup``) and ``checkpoints/``
(``best.ckpt``, else ``last.ckpt``).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["run_checkpoint", "run_method", "load_run"]


def run_checkpoint(run: str | Path) -> Path:
    """The checkpoint a run's predictions come from: ``best.ckpt``, else ``last.ckpt``."""
    from labelsky.data.io import DatasetError

    run = Path(run)
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise DatasetError(f"{run}: no checkpoint found in {run / 'checkpoints'}; train first")


def run_method(run: str | Path) -> str:
    cfg = Path(run) / "config.json"
    return (json.loads(cfg.read_text()).get("method") if cfg.exists() else None) or "transfer"


def load_run(run: str | Path):
    """The best model of a run folder (transfer-learning, domain-adaptation or semi-supervised), in eval mode."""
    ckpt = run_checkpoint(run)
    method = run_method(run)
    if method == "semisup":
        from labelsky.methods.semisup.module import load_semisup

        return load_semisup(ckpt)
    if method == "uda":
        from labelsky.methods.uda.module import load_uda

        return load_uda(ckpt)
    from labelsky.methods.transfer import load_classifier

    return load_classifier(ckpt)
