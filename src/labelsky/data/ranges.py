"""The one grammar of randomisation ranges: ``NAME=VALUE`` or ``NAME=LOW:HIGH``, comma-separated.

Both ``labelsky simulate --randomise`` (per-object nuisances drawn by the
simulator, :class:`labelsky.data.simulate.randomise.Randomisation`) and the
training ``--randomise`` (per-image nuisances on rendered pictures,
:class:`labelsky.data.transforms.NuisanceRandomisation`) read their text here;
each class then checks the numbers it gets.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["parse_ranges"]


def parse_ranges(text: str | None, names: Sequence[str], *, option: str = "--randomise",
                 error: type[Exception] = ValueError) -> dict[str, list[float]]:
    """``{name: [value]}`` or ``{name: [low, high]}`` of every item of ``text``.

    Names are matched with ``-`` and ``_`` alike; an empty text gives ``{}``.
    A bad item raises ``error`` naming it, ``option`` and the known names.
    """
    out: dict[str, list[float]] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        name, eq, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in names or not eq or not value.strip():
            raise error(f"{option}: {item!r} is not NAME=VALUE or NAME=LOW:HIGH with NAME one of "
                        f"{', '.join(names)}")
        try:
            numbers = [float(v) for v in value.split(":")]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2):
            raise error(f"{option}: {item!r}: expected {name}=VALUE or {name}=LOW:HIGH (numbers)")
        out[name] = numbers
    return out
