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

Every folder prepared here keeps a manifest, ``.labelsky_files``: the files
labelsky wrote into it (:func:`finish_outputs` records them when the command
ends: what the manifest held before, and every file written since the command
began). ``overwrite`` deletes only those files and the folders they leave
empty; anything else (a file the user put there) is kept and named. A folder
of a labelsky version without manifests is replaced whole, as before.

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

__all__ = ["MARKER", "MANIFEST", "prepare_output", "finish_outputs", "is_labelsky_output", "read_marker",
           "made_here", "mark_output", "marker_kind",
           "check_not_input", "check_not_current", "OutputLock"]

#: the file that marks a folder as made by labelsky
MARKER = ".labelsky"

#: the list of files labelsky wrote into a folder (see the module docstring)
MANIFEST = ".labelsky_files"
#: folders prepared by this process whose manifest is still to be recorded: {folder: the command's start time}
_OPEN: dict[Path, float] = {}
#: seconds of file-time granularity allowed when a file written by the command is told from older ones
_MTIME_SLACK = 2.0

#: suffixes of files, never of a folder labelsky writes (``--out x.csv`` is a mistake, not a folder name)
FILE_SUFFIXES = frozenset({".csv", ".parquet", ".fits", ".fit", ".fits.gz", ".h5", ".hdf5", ".json", ".txt", ".png",
                           ".jpg", ".jpeg", ".npy", ".npz", ".ckpt", ".pt", ".yaml", ".yml", ".ecsv", ".xml"})


def read_marker(path: str | Path) -> dict | None:
    """The marker of the folder ``path`` when it is labelsky's (JSON written by :func:`mark_output`), else
    ``None`` (no marker, or a ``.labelsky`` file that is empty, unreadable or someone else's)."""
    try:
        marker = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return marker if isinstance(marker, dict) and marker.get("made_by") == "labelsky" else None


def is_labelsky_output(path: str | Path) -> bool:
    """True when ``path`` is a folder that labelsky made (it holds labelsky's marker)."""
    return read_marker(path) is not None


def marker_kind(path: str | Path) -> str | None:
    """What the labelsky folder ``path`` holds, from its marker (``None`` if unknown)."""
    kind = (read_marker(path) or {}).get("kind")
    return kind if isinstance(kind, str) and kind else None


def _identity(path: Path) -> dict:
    st = os.stat(path)
    return {"dev": int(st.st_dev), "ino": int(st.st_ino)}


def made_here(path: str | Path) -> bool:
    """True when the marker of ``path`` was written for this very folder (not copied in from another, nor the
    folder copied elsewhere): the condition for labelsky to delete it. Markers of older versions, which did not
    record the folder, count as made here."""
    marker = read_marker(path)
    if marker is None:
        return False
    folder = marker.get("folder")
    return folder is None or folder == _identity(Path(path))


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
                               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "folder": _identity(path)}) + "\n")
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
        why = (f"its {MARKER} file is not labelsky's marker" if (path / MARKER).exists() else
               f"no {MARKER} marker in it")
        raise OutputError(f"{path} exists and was not made by labelsky ({why}); labelsky never writes into or "
                          f"deletes such a folder: choose a new or empty folder")
    if non_empty and not overwrite and marker_kind(path) != kind:
        raise OutputError(f"{path} holds a labelsky {marker_kind(path) or 'output of unknown kind'}, not a {kind}; "
                          f"choose another folder")
    if overwrite and non_empty:
        check_not_current(path)
        made = marker_kind(path)
        if made != kind:
            raise OutputError(f"--overwrite refused: {path} holds a labelsky {made or 'output of unknown kind'}, "
                              f"not a {kind}; choose another folder (or delete it yourself if you mean to)")
        if not made_here(path):
            raise OutputError(f"--overwrite refused: the {MARKER} marker of {path} was made for another folder "
                              f"(copied in, or the folder copied); labelsky deletes only folders it made there: "
                              f"delete it yourself or choose another folder")
        if path.is_symlink():
            raise OutputError(f"--overwrite refused: {path} is a symbolic link; labelsky replaces only real folders")
        _replace(path)
    fresh = not non_empty or overwrite
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not is_labelsky_output(path):
            mark_output(path, kind)
        _begin(path, fresh)
    except FileExistsError as err:
        raise OutputError(f"cannot create output {path}: {err.filename} is a file") from None
    except NotADirectoryError:
        raise OutputError(f"cannot create output {path}: a part of the path is a file, not a folder") from None
    except OSError as err:
        raise OutputError(f"cannot write output {path}: {err.strerror or err}") from None
    return path


def _read_manifest(path: Path) -> dict | None:
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), list):
        return None
    return m


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=0) + "\n")
    os.replace(tmp, path / MANIFEST)


def _files(path: Path) -> list[Path]:
    """Every file (and symbolic link) under ``path``, not following links."""
    out = []
    for root, dirs, files in os.walk(path):
        root = Path(root)
        out += [root / f for f in files] + [root / d for d in dirs if (root / d).is_symlink()]
    return out


def _written(path: Path, manifest: dict) -> set[str]:
    """The files under ``path`` that labelsky wrote: the manifest's, and those written since a command that has
    not recorded them began (``pending``: a command still running, or one killed)."""
    names = {str(f) for f in manifest.get("files", []) if isinstance(f, str)}
    since = manifest.get("pending")
    if isinstance(since, (int, float)):
        for f in _files(path):
            try:
                if f.lstat().st_mtime >= since - _MTIME_SLACK:
                    names.add(str(f.relative_to(path)))
            except OSError:
                continue
    return names


def _begin(path: Path, fresh: bool) -> None:
    """Note the start of a command writing ``path``; ``fresh``: the folder was new, empty or just replaced."""
    import atexit

    m = _read_manifest(path)
    if m is None:
        if not fresh:
            return  # a folder of a version without manifests: left as it was
        m = {"files": []}
    if not isinstance(m.get("pending"), (int, float)):
        m["pending"] = __import__("time").time()
    _write_manifest(path, m)
    if not _OPEN:
        atexit.register(finish_outputs)
    _OPEN[path] = m["pending"]


def finish_outputs() -> None:
    """Record, in each folder this process prepared, the files labelsky wrote into it (its manifest). The
    command line calls it when a command ends, and it runs at exit; call it after a library call whose output
    you will edit by hand."""
    for path in list(_OPEN):
        _OPEN.pop(path, None)
        m = _read_manifest(path)
        if m is None:
            continue
        names = _written(path, m)
        m = {"files": sorted(n for n in names if n not in (MANIFEST, f"{MANIFEST}.tmp")
                             and ((path / n).is_symlink() or (path / n).exists()))}
        try:
            _write_manifest(path, m)
        except OSError:  # a full or read-only disk: the next command finds the pending start and counts from it
            pass


def _replace(path: Path) -> None:
    """Delete what labelsky wrote into ``path`` (its manifest's files) and the folders left empty; keep and name
    anything else. A folder without a manifest (an older version's) is deleted whole."""
    import warnings

    from labelsky.errors import LabelskyWarning

    m = _read_manifest(path)
    if m is None:
        shutil.rmtree(path)
        return
    ours = _written(path, m) | {MARKER, MANIFEST}
    for name in ours:
        f = path / name
        if f.is_symlink() or f.is_file():
            f.unlink(missing_ok=True)
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            p = Path(root) / d
            if not p.is_symlink() and not any(p.iterdir()):
                p.rmdir()
    kept = sorted(str(f.relative_to(path)) for f in _files(path))
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        warnings.warn(f"--overwrite: {path} also held files labelsky did not write; they are kept: {shown}",
                      LabelskyWarning, stacklevel=3)
    else:
        path.rmdir()


class OutputLock:
    """An exclusive lock file ``OUT.lock`` beside an output while a command writes it (a catalog, a run folder).

    A second command into the same output stops at once and says who holds
    it; a lock left by a process that died on this host (``kill -9``) is taken
    over. A lock file that is not labelsky's (unreadable) is never taken over:
    the command names it and stops.
    """

    def __init__(self, out: str | Path, doing: str = "written", error: type = OutputError):
        self.out, self.doing, self.error = Path(out), doing, error
        self.path = self.out.parent / f"{self.out.name}.lock"

    def __enter__(self):
        import socket
        import time

        host = socket.gethostname()
        for _ in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError as err:
                if not self.path.is_file() or err.filename != str(self.path):
                    raise OutputError(f"cannot create output {self.out}: {err.filename} is a file, not a folder") \
                        from None
                held = _read_lock(self.path)
                if held is None:
                    raise self.error(f"{self.path} exists but is not a lock labelsky wrote (unreadable); if no "
                                     f"labelsky command is writing {self.out}, delete it and rerun") from None
                if held.get("host") == host and not _alive(held.get("pid")):
                    self.path.unlink(missing_ok=True)  # its writer is gone: a stale lock
                    continue
                since = f" since {held['started']}" if held.get("started") else ""
                raise self.error(f"{self.out} is being {self.doing} by process {held['pid']} on {held['host']}"
                                 f"{since}; wait for it to finish (or delete {self.path} if that process is gone)") \
                    from None
            except NotADirectoryError:
                raise OutputError(f"cannot create output {self.out}: a part of the path is a file, not a folder") \
                    from None
            except OSError as err:
                raise OutputError(f"cannot write output {self.out}: {err.strerror or err}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump({"made_by": "labelsky", "pid": os.getpid(), "host": host,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, fh)
            return self
        raise self.error(f"cannot take the lock {self.path}")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        return False


def _read_lock(path: Path) -> dict | None:
    """A lock's record, or ``None`` when it is not one labelsky wrote (unreadable, or without pid and host)."""
    try:
        held = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or not isinstance(held.get("pid"), int) or not held.get("host"):
        return None
    return held


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
