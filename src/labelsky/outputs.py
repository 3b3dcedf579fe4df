"""One output lifecycle for every command that writes a folder.

Every folder labelsky creates (a dataset, a simulation, a crossmatch, a run)
holds a marker file, ``.labelsky``, saying what it holds. (A partitioned
catalog is recognised by its ``_job.json``; ``labelsky catalog`` applies the
same rules to it.) :func:`prepare_output` is the one gate through which such a folder is
created or replaced:

- a new or empty folder is created and marked;
- an existing folder that labelsky did not make (no marker) is never written
  into and never deleted;
- ``overwrite`` replaces only a folder that labelsky made for the same kind
  of output (a run replaces a run, never a dataset), and never one that is an
  input of the same command, that holds an input, or that is the current
  folder or one of its parents;
- an output path under an existing file, or on a disk that refuses, is an
  :class:`~labelsky.errors.OutputError` naming the path.

Without ``overwrite`` an existing labelsky folder is kept: the caller then
decides whether to resume it (same settings) or refuse (see
:mod:`labelsky.methods.run` for runs, :class:`~labelsky.data.io.DatasetWriter`
for datasets).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from labelsky.errors import OutputError

__all__ = ["MARKER", "prepare_output", "is_labelsky_output", "mark_output", "marker_kind", "check_not_input",
           "check_not_current"]

#: the file that marks a folder as made by labelsky
MARKER = ".labelsky"

#: suffixes of files, never of a folder labelsky writes (``--out x.csv`` is a mistake, not a folder name)
FILE_SUFFIXES = frozenset({".csv", ".parquet", ".fits", ".fit", ".fits.gz", ".h5", ".hdf5", ".json", ".txt", ".png",
                           ".jpg", ".jpeg", ".npy", ".npz", ".ckpt", ".pt", ".yaml", ".yml", ".ecsv", ".xml"})


def is_labelsky_output(path: str | Path) -> bool:
    """True when ``path`` is a folder that labelsky made (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def marker_kind(path: str | Path) -> str | None:
    """What the labelsky folder ``path`` holds, from its marker (``None`` if unknown)."""
    try:
        return json.loads((Path(path) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_not_current(path: str | Path) -> None:
    """Refuse to replace ``path`` when it is the current folder or one of its parents."""
    if _is_within(_resolved(Path.cwd()), _resolved(path)):
        raise OutputError(f"--overwrite refused: {path} is the current folder or one of its parents")


def mark_output(path: str | Path, kind: str) -> None:
    """Write the marker of a labelsky ``kind`` folder (``dataset``, ``simulation``, ``run``, ...)."""
    from labelsky._version import __version__

    path = Path(path)
    tmp = path / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"made_by": "labelsky", "kind": kind, "labelsky_version": __version__,
                               "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
    os.replace(tmp, path / MARKER)


def _resolved(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser())).resolve()


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_input(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "output",
                    inside: bool = False) -> None:
    """Refuse an output ``path`` that is an input of the command or a folder holding one (with ``inside``, also
    one inside an input folder: a file written there could replace a part of the input)."""
    out = _resolved(path)
    for item in inputs:
        if item is None:
            continue
        src = _resolved(item)
        if _is_within(src, out):
            rel = "is" if src == out else "holds"
            raise OutputError(f"{what} {path} {rel} an input of this command ({item}); choose another path")
        if inside and _is_within(out, src):
            raise OutputError(f"{what} {path} is inside an input of this command ({item}); choose another path")


def prepare_output(path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = (),
                   kind: str = "output") -> Path:
    """Create (or, with ``overwrite``, replace) the labelsky output folder ``path``; returns it.

    Parameters
    ----------
    path
        The output folder.
    overwrite
        Remove an existing folder first, but only one labelsky made, that is
        not (and does not hold) an input, and is not the current folder or a
        parent of it.
    inputs
        The command's inputs (datasets, catalogs, weight files, ...).
    kind
        What the folder holds, recorded in its marker.

    Raises
    ------
    OutputError
        The folder cannot be used or replaced; nothing is deleted.
    """
    path = Path(path)
    inputs = [p for p in inputs if p is not None]
    if path.suffix.lower() in FILE_SUFFIXES:
        raise OutputError(f"output {path} looks like a file name ({path.suffix}), but a labelsky {kind} is a folder; "
                          f"choose a folder name")
    check_not_input(path, inputs)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output {path} is a file, not a folder; choose another --out")
    non_empty = path.is_dir() and any(path.iterdir())
    if non_empty and not is_labelsky_output(path):
        raise OutputError(f"{path} exists and was not made by labelsky (no {MARKER} marker in it); labelsky never "
                          f"writes into or deletes such a folder: choose a new or empty folder")
    if overwrite and non_empty:
        check_not_current(path)
        made = marker_kind(path)
        if made not in (kind, None):
            raise OutputError(f"--overwrite refused: {path} holds a labelsky {made}, not a {kind}; choose another "
                              f"folder (or delete it yourself if you mean to)")
        if path.is_symlink():
            raise OutputError(f"--overwrite refused: {path} is a symbolic link; labelsky replaces only real folders")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not is_labelsky_output(path):
            mark_output(path, kind)
    except FileExistsError as err:
        raise OutputError(f"cannot create output {path}: {err.filename} is a file") from None
    except NotADirectoryError:
        raise OutputError(f"cannot create output {path}: a part of the path is a file, not a folder") from None
    except OSError as err:
        raise OutputError(f"cannot write output {path}: {err.strerror or err}") from None
    return path
