"""The local catalog engine: one process, reading and writing overlapped with the model's compute.

Three stages run at once: a reader thread loads and preprocesses the next
shards (HDF5 reads and numpy release the GIL), the calling thread runs the
model, a writer thread turns predictions into Parquet parts. At most
``prefetch`` shards wait between stages, so memory stays flat whatever the
dataset's size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labelsky.catalog.shards import load_shard, predict_batches, shard_table, write_part
from labelsky.data.io import LabelskyDataset

__all__ = ["LocalEngine"]


@dataclass(frozen=True)
class LocalEngine:
    """One process; ``prefetch`` shards read ahead and waiting to be written (the device is the predictor's)."""

    prefetch: int = 2
    name = "local"

    def run(self, ds: LabelskyDataset, parts_dir: Path, todo, predictor, transform, batch_size: int,
            embedding: bool, progress) -> None:
        """Predict shards ``todo`` of ``ds`` into parts under ``parts_dir``; ``progress(n)`` after each."""
        _run(ds, parts_dir, todo, predictor, transform, batch_size, embedding, progress, self.prefetch)


def _run(ds, parts_dir, todo, predictor, transform, batch_size, embedding, progress, prefetch) -> None:
    if not todo:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="labelsky-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="labelsky-write") as writer:
        pending = [reader.submit(load_shard, ds, s, transform) for s in todo[:prefetch]]
        writes = []
        for i, s in enumerate(todo):
            x = pending.pop(0).result()
            if i + prefetch < len(todo):
                pending.append(reader.submit(load_shard, ds, todo[i + prefetch], transform))
            output, emb = predict_batches(x, predictor, batch_size, embedding)
            writes.append(writer.submit(_write, ds, parts_dir, s, output, emb, predictor))
            while len(writes) > prefetch:  # back-pressure: never more than a few parts waiting
                writes.pop(0).result()
            progress(len(x))
        for w in writes:
            w.result()


def _write(ds, parts_dir, shard, output, emb, predictor) -> None:
    write_part(parts_dir, shard, shard_table(ds, shard, output, emb, predictor))
