"""What a backbone weight file was trained on, and refusing one trained with a task's own labels.

A model that starts from weights which already saw the labels it is judged on
(say, a backbone fine-tuned on ellipticals and spirals, used to reproduce an
elliptical / spiral experiment) reports an accuracy that is not the method's.
:func:`weights_provenance` reads what a weight file records of its training;
:func:`check_weights` refuses a file whose training used any of a task's
classes, unless the user allows it (an ablation). ``labelsky train --weights``
records the provenance in the run's ``config.json``; the Khan et al.
reproduction refuses leaked labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from labelsky.errors import SettingsError, unreadable_reason

__all__ = ["weights_provenance", "check_weights", "PROVENANCE_FILE"]

#: the record written beside a weight file labelsky exports (``backbone.json``)
PROVENANCE_FILE = "backbone.json"


def _checkpoint_hyper_parameters(path: Path) -> dict:
    """The hyper-parameters of a Lightning checkpoint, read safely (``weights_only=True``); ``{}`` if none."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files; all mean the same here
        raise SettingsError(f"weight file {path} cannot be read safely: {unreadable_reason(err)}") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    return hp if isinstance(hp, dict) else {}


def weights_provenance(weight_file) -> dict:
    """What a backbone weight file was trained on: ``{"kind", "classes", "method", ...}``.

    A Lightning checkpoint tells by its own hyper-parameters (``class_names``);
    otherwise the record beside the file, ``backbone.json``, or the
    ``config.json`` of the labelsky run folder holding it (the file's folder
    or one of its two parents, e.g. ``RUN/checkpoints/best.ckpt``);
    ``{"kind": "unknown", "classes": []}`` when there is none.
    """
    weight_file = Path(weight_file)
    if weight_file.suffix == ".ckpt":
        hp = _checkpoint_hyper_parameters(weight_file)
        names = hp.get("class_names")
        if names is not None:
            config = hp.get("config") if isinstance(hp.get("config"), dict) else {}
            method = "pretext" if config.get("task") in ("bands", "channel_order") else None
            return {"kind": "Lightning checkpoint", "classes": list(names), "method": method}
    parents = [weight_file.parent, weight_file.parent.parent, weight_file.parent.parent.parent]
    records = [weight_file.parent / PROVENANCE_FILE] + [d / "config.json" for d in parents]
    for record in records:
        if record.exists():
            try:
                made = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            if record.name == "config.json":
                made = {"kind": f"labelsky run ({made.get('method')})", "classes": made.get("classes", []),
                        "method": made.get("method")}
            return made
    return {"kind": "unknown", "classes": []}


def check_weights(weight_file, task_classes: Sequence[str], *, allow_labelled: bool = False,
                  option: str = "--allow-labelled-pretraining") -> dict:
    """The provenance of ``weight_file``; a :class:`SettingsError` when its training used any of
    ``task_classes`` and ``allow_labelled`` is not set (a pretext's classes are band names or permutations,
    never a task's)."""
    made = weights_provenance(weight_file)
    leaked = sorted(set(made.get("classes") or []) & set(task_classes))
    if made.get("method") == "pretext":
        leaked = []
    if leaked and not allow_labelled:
        raise SettingsError(f"{weight_file} was trained with the label(s) {leaked} of this task ({made.get('kind')}); "
                            f"a model judged on these classes must start from features that never saw them. Pass "
                            f"{option} to run it as an ablation")
    return {**made, "labels_of_the_task": leaked}
