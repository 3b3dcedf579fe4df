"""Run a simulation: shards in parallel, deterministic, atomic, resumable.

The runner is generic: a *producer* turns object ``i`` into, for every survey
that observes it, an image and a catalog row. Objects are grouped into
shards; worker processes draw whole shards and write them atomically through
:class:`~labelsky.data.io.DatasetWriter`. Every random draw for object ``i``
comes from :func:`labelsky.utils.object_seed` (seed, i, stream), so the
output does not depend on the number of workers, and a rerun after an
interruption skips the shards already on disk.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from labelsky.data.io import DatasetError, DatasetWriter
from labelsky.errors import SettingsError
from labelsky.utils import atomic_write_json

__all__ = ["run_shards", "SimulationError"]

log = logging.getLogger(__name__)


class SimulationError(SettingsError):
    """Bad simulation settings."""


def _work(args):
    producer, config, shard, indices, writers = args
    per_survey: dict[str, tuple[list, list]] = {name: ([], []) for name in writers}
    for i in indices:
        for name, (image, row) in producer(int(i), config).items():
            per_survey[name][0].append(image)
            per_survey[name][1].append(row)
    for name, writer in writers.items():
        if writer.has_shard(shard):
            continue
        images, rows = per_survey[name]
        arr = np.stack(images) if images else np.zeros((0, *writer.image_shape), np.float32)
        cols = {k: [r[k] for r in rows] for k in rows[0]} if rows else _empty_columns(writer)
        writer.write_shard(shard, arr, cols)
    return shard, len(indices)


def _empty_columns(writer):
    import pyarrow as pa

    from labelsky.data.io import CORE_COLUMNS

    return pa.table({k: pa.array([], t) for k, (t, _) in CORE_COLUMNS.items() if k not in ("shard", "row")})


@dataclass
class SkySettings:
    """Settings shared by every simulation: seed, splits, where on the sky, and the realism switches."""

    seed: int = 0
    splits: dict = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    ra_center: float = 150.0
    dec_center: float = 2.0
    field_size_deg: float = 10.0
    galactic_latitude: float = 60.0
    stars: bool = True
    field_galaxies: bool = True
    sky_residuals: bool = True
    source_noise: bool = True
    noise: bool = True

    def _as_dict(self) -> dict:
        """The settings as recorded: a survey given as a YAML file by its content (an edited file is other
        settings: a resumed simulation refuses it instead of mixing two specs); built-in names stay names."""
        from labelsky.data.surveys import get_survey

        d = dataclasses.asdict(self)
        d["surveys"] = [s if isinstance(s, str) and not s.lower().endswith((".yaml", ".yml"))
                        else get_survey(s).to_dict() for s in self.surveys]
        return d


def check_surveys(surveys) -> None:
    """At least one survey, each known with filters speclite knows (SurveyError names it), no duplicates."""
    from labelsky.data.surveys import check_filters, get_survey

    if not surveys:
        raise SimulationError("at least one survey is needed")
    specs = [get_survey(s) for s in surveys]  # raises SurveyError naming an unknown survey
    for spec in specs:  # the simulator computes colours through every filter: fail before any work starts
        check_filters(spec)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise SimulationError(f"surveys must be distinct, got {names}")


def check_splits(splits: dict) -> None:
    bad = set(splits) - {"train", "val", "test", "unlabelled"}
    if bad or any(v < 0 for v in splits.values()) or sum(splits.values()) <= 0:
        raise SimulationError(f"splits must map train/val/test/unlabelled to fractions >= 0, got {splits}")


def reference_band(survey) -> int:
    """Index of the survey's r band (or its middle band): where truth magnitudes are compared to depth."""
    return survey.bands.index("r") if "r" in survey.bands else survey.n_bands // 2


def run_shards(out: str | Path, producer: Callable, config: dict, n_objects: int, shard_size: int,
               writers: dict[str, DatasetWriter], workers: int = 1, progress: bool = True,
               desc: str = "simulating") -> None:
    """Produce ``n_objects`` objects in shards of ``shard_size`` with ``workers`` processes.

    ``producer(i, config)`` must be a picklable module-level function returning
    ``{survey_name: (image [bands, H, W], row dict)}``.
    """
    from tqdm.auto import tqdm

    n_shards = (n_objects + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not all(w.has_shard(s) for w in writers.values())]
    done_objects = n_objects - sum(len(range(s * shard_size, min((s + 1) * shard_size, n_objects))) for s in todo)
    if done_objects and progress:
        log.info(f"resuming {out}: {n_shards - len(todo)}/{n_shards} shards already written")
    tasks = [(producer, config, s, list(range(s * shard_size, min((s + 1) * shard_size, n_objects))), writers)
             for s in todo]
    bar = tqdm(total=n_objects, initial=done_objects, desc=desc, unit="obj", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                _, n = _work(t)
                bar.update(n)
        else:
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_work, t) for t in tasks]
                for f in as_completed(futures):
                    _, n = f.result()
                    bar.update(n)
    finally:
        bar.close()


def read_simulation_meta(out: str | Path) -> dict:
    """``out/simulation.json`` as a dict; DatasetError naming the file when it is missing or unreadable."""
    import json

    path = Path(out) / "simulation.json"
    if not path.is_file():
        raise DatasetError(f"{out} is not a simulation folder: simulation.json is missing")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not text
        raise DatasetError(f"{path}: unreadable simulation metadata ({err}); rerun the simulation with "
                           f"--overwrite") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: simulation metadata is a JSON {type(meta).__name__}, expected an object of "
                           f"fields; rerun the simulation with --overwrite")
    return meta


def prepare_output(out: Path, config: dict, overwrite: bool, inputs=()) -> None:
    """Check/record the run's settings in ``out/simulation.json`` (``inputs``: survey YAML files used)."""
    import json

    from labelsky.outputs import prepare_output as prepare_folder

    cfg_path = out / "simulation.json"
    if out.exists() and any(out.iterdir()) and not overwrite and cfg_path.exists():
        old = read_simulation_meta(out)
        if old.get("complete"):
            raise DatasetError(f"{out} already holds a finished simulation; pass --overwrite to replace it")
        new = json.loads(json.dumps(config, default=str))
        if old.get("config") != new:
            prev = old.get("config") if isinstance(old.get("config"), dict) else {}
            keys = sorted(k for k in set(prev) | set(new) if prev.get(k) != new.get(k))
            raise DatasetError(f"{out} holds an unfinished simulation with other settings ({', '.join(keys)}); "
                               f"pass --overwrite to start again")
    prepare_folder(out, overwrite=overwrite, inputs=inputs, kind="simulation")
    if not cfg_path.exists():
        atomic_write_json(cfg_path, {"config": config, "complete": False})


def checked(cfg):
    """``cfg`` after its ``validate()`` (a survey's error is a :class:`SimulationError`, one line)."""
    from labelsky.data.surveys import SurveyError

    try:
        cfg.validate()
    except SurveyError as err:
        raise SimulationError(str(err)) from None
    return cfg


def start_run(out: Path, cfg, overwrite: bool, reuse: bool):
    """Open ``out`` for the simulation ``cfg``: ``(settings dict, surveys)`` to simulate, or ``None`` when a
    finished simulation of the same settings is there to reuse."""
    from labelsky.data.surveys import get_survey

    config_dict = cfg.to_dict()
    if reuse and not overwrite and is_finished(out, config_dict):
        return None
    prepare_output(out, config_dict, overwrite,
                   inputs=[s for s in cfg.surveys if isinstance(s, (str, Path)) and Path(s).is_file()])
    return config_dict, [get_survey(s) for s in cfg.surveys]


def is_finished(out: Path, config: dict) -> bool:
    """True when ``out`` holds a finished simulation made with ``config``."""
    import json

    try:
        meta = json.loads((Path(out) / "simulation.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and bool(meta.get("complete")) \
        and meta.get("config") == json.loads(json.dumps(config, default=str))


def finish_output(out: Path, config: dict, datasets: dict) -> None:
    """Mark ``out`` finished; dataset paths inside ``out`` are stored relative to it (the folder can move)."""

    def rel(p):
        p = Path(p)
        try:
            return str(p.relative_to(out))
        except ValueError:
            return str(p)

    atomic_write_json(out / "simulation.json", {"config": config, "complete": True,
                                                "datasets": {k: rel(v) for k, v in datasets.items()}})


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
