"""The Ray catalog engine: Ray Data feeds shards to a pool of actors that read, predict and write them.

Pipeline (streaming; Ray Data's back-pressure keeps memory flat)::

    from_items(shards to do)
      -> map_batches(_ShardPredictor, ActorPoolStrategy(size=N))
             actors on any node: model loaded once each (CPU or GPU); per shard: read + preprocess,
             predict, write part-NNNNN.parquet atomically
      -> driver: progress, then assembly as the local engine

The shards are read in parallel by the actors (each reads the shard it
predicts: no image crosses the object store).

Each actor loads the run's model itself (the
:class:`~labelsky.methods.predict.Predictor` of a run folder travels without
weights) on its own device. Parts are written by the actors straight
into the output folder, which therefore has to be visible to every node of a
cluster (a shared file system); on one machine that is automatic. The
prediction of a shard is the same code as the local engine's
(:func:`labelsky.catalog.shards.predict_shard`), so both engines give the same
rows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RayEngine"]


@dataclass(frozen=True)
class RayEngine:
    """Ray Data: shards read and predicted by a pool of actors (CPU or GPU each).

    ``address``: a running Ray cluster (``ray://...`` or ``host:port``;
    ``auto`` for the one of ``ray start``); default a local instance, started
    for the catalog and shut down after it. ``workers``: actors in the pool
    (default: one per GPU with ``gpus_per_worker``, else one per
    ``cpus_per_worker`` CPUs of the cluster).
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    name = "ray"

    @property
    def device(self) -> str:
        """Where each actor predicts."""
        return "cuda" if self.gpus_per_worker else "cpu"

    def run(self, ds, parts_dir: Path, todo, predictor, transform, batch_size: int, embedding: bool,
            progress) -> None:
        """Predict shards ``todo`` of ``ds`` into parts under ``parts_dir``; ``progress(n)`` after each."""
        if getattr(predictor, "run", None) is None:
            from labelsky.catalog.shards import CatalogWriteError

            raise CatalogWriteError("the ray engine needs the predictor of a run folder (each actor loads it)")
        run_ray(ds, parts_dir, todo, predictor, transform, batch_size, embedding, progress, address=self.address,
                workers=self.workers, gpus_per_worker=self.gpus_per_worker, cpus_per_worker=self.cpus_per_worker)


class _ShardPredictor:
    """One actor of the pool: loads the model once, then reads, predicts and writes whole shards."""

    def __init__(self, ds, parts_dir: str, predictor, transform, batch_size: int, embedding: bool, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.ds, self.parts_dir, self.predictor, self.transform = ds, Path(parts_dir), predictor, transform
        self.batch_size, self.embedding = batch_size, embedding

    def __call__(self, batch: dict) -> dict:
        from labelsky.catalog.shards import load_shard, predict_shard, write_part

        shards, rows = [], []
        for s in batch["shard"]:
            s = int(s)
            x = load_shard(self.ds, s, self.transform)
            table = predict_shard(self.ds, s, x, self.predictor, self.batch_size, self.embedding)
            write_part(self.parts_dir, s, table)
            shards.append(s)
            rows.append(table.num_rows)
        return {"shard": np.array(shards, np.int64), "rows": np.array(rows, np.int64)}


def run_ray(ds, parts_dir: Path, todo, predictor, transform, batch_size: int, embedding: bool, progress,
            address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0.0,
            cpus_per_worker: float = 1.0) -> None:
    """Predict shards ``todo`` of ``ds`` into ``parts_dir`` with Ray Data.

    ``address``: a running Ray cluster (``ray://...`` or ``host:port``;
    ``auto`` for the one of ``ray start``); default a local instance, started
    here and shut down at the end. ``workers``: actors in the pool (default:
    one per GPU with ``gpus_per_worker``, else one per ``cpus_per_worker``
    CPUs of the cluster).
    """
    import ray

    if not todo:
        return
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level=logging.WARNING)
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kw)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        total = ray.cluster_resources()
        if workers is None:
            if gpus_per_worker:
                workers = max(1, int(total.get("GPU", 0) // gpus_per_worker))
            else:
                workers = max(1, int(total.get("CPU", 1) // max(cpus_per_worker, 1e-9)))
        workers = max(1, min(int(workers), len(todo)))
        items = ray.data.from_items([{"shard": int(s)} for s in todo], override_num_blocks=len(todo))
        results = items.map_batches(
            _ShardPredictor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
            fn_constructor_kwargs=dict(ds=ds, parts_dir=str(parts_dir), predictor=predictor, transform=transform,
                                       batch_size=batch_size, embedding=embedding,
                                       threads=int(max(1, cpus_per_worker))))
        for row in results.iter_rows():
            progress(int(row["rows"]))
    finally:
        if started:
            ray.shutdown()
