"""Small shared helpers: atomic file writes, deterministic seeds, devices."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = [
    "check_settings_record",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "object_seed",
    "stable_hash",
    "default_device",
]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Readers never see a half-written file: either the old file (or none) or the
    complete new one. On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    """The process umask, read once (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as strict JSON (NaN and infinities, e.g. an undefined metric, become ``null``), atomically."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default,
                                       allow_nan=False) + "\n")


def _finite(o):
    """``o`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(o, float):  # numpy float64 too
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray) and o.dtype.kind == "f":
        return _finite(o.tolist())
    if isinstance(o, np.floating):
        return _finite(float(o))
    return o


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def stable_hash(*parts: Any) -> int:
    """A 64-bit integer hash of ``parts`` that is the same in every process.

    (Python's ``hash`` of strings is salted per process, so it cannot seed
    anything that must be reproducible.)
    """
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x00")
    return int.from_bytes(h.digest(), "little")


def object_seed(seed: int, index: int, *stream: Any) -> np.random.Generator:
    """Random generator for object ``index`` of a run seeded with ``seed``.

    The generator depends only on (seed, index, stream), never on which worker
    process draws the object or in which order, which makes simulations
    byte-identical for any number of workers. ``stream`` separates independent
    draws for the same object (e.g. truth vs. the noise of one survey).
    """
    key = [int(seed), int(index)] + [stable_hash(s) & 0xFFFFFFFF for s in stream]
    return np.random.default_rng(np.random.SeedSequence(key))


def is_rank_zero() -> bool:
    """False in the processes that Lightning or torchrun start for devices and nodes other than the first (read
    from the environment, so it holds before any trainer exists)."""
    return all(os.environ.get(k, "0") in ("", "0") for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def default_device(requested: str | None = None) -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``; ``requested`` overrides (checked: ``cpu``, ``cuda``,
    ``cuda:N`` of a visible GPU, ``mps``)."""
    import re

    import torch

    if requested and requested != "auto":
        from labelsky.errors import SettingsError

        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", requested):
            raise SettingsError(f"device {requested!r}: expected auto, cpu, cuda, cuda:N or mps")
        if requested.startswith("cuda"):
            n = torch.cuda.device_count()
            index = int(requested.split(":")[1]) if ":" in requested else 0
            if index >= n:
                raise SettingsError(f"device {requested!r}: {n} CUDA GPU(s) visible")
        if requested == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                       and torch.backends.mps.is_available()):
            raise SettingsError("device 'mps': not available on this machine")
        return requested

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_settings_record(folder: str | Path, settings: dict, *, error: type = ValueError,
                          unrecorded: str | None = None) -> None:
    """Keep one folder of reusable runs to one set of settings, recorded in ``folder/settings.json``.

    The first call writes the record; a later call with other settings raises
    ``error`` naming each difference (recorded, new). ``unrecorded`` names a
    path inside ``folder`` whose presence without a record (runs of an older
    version) is refused as well.
    """
    folder = Path(folder)
    record = folder / "settings.json"
    settings = json.loads(json.dumps(settings, default=_json_default))
    if record.exists():
        old = json.loads(record.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            raise error(f"{folder} holds runs made with other settings {diff} (recorded, new); use another folder")
    elif unrecorded is not None and (folder / unrecorded).exists():
        raise error(f"{folder} holds runs without a settings record (an older labelsky); use another folder")
    else:
        atomic_write_json(record, settings)
