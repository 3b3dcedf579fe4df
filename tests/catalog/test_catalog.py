"""Catalogs: schema, layouts, resume after kill (local and Ray engines), local vs Ray row for row."""

import os
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from labelsky.catalog.writer import CatalogWriteError, write_catalog
from labelsky.data.io import DatasetWriter
from labelsky.data.transforms import Preprocess


def _write_sharded(path, n_shards, per_shard=20, size=8, seed=None, labelled=False):
    w = DatasetWriter(path, "decals", (3, size, size), classes=["a", "b"], n_shards=n_shards)
    rng = np.random.default_rng(n_shards if seed is None else seed)
    for s in range(n_shards):
        n = per_shard
        lab = rng.integers(0, 2, n)
        imgs = rng.normal(size=(n, 3, size, size))
        if labelled:  # class b is brighter: a model learns it in one epoch
            imgs = imgs * 0.01 + lab[:, None, None, None] * 0.05
        w.write_shard(s, imgs, {
            "id_str": [f"o{s}-{i}" for i in range(n)], "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-30, 30, n), "survey": ["decals"] * n,
            "split": np.where(rng.random(n) < 0.7, "train", "val") if labelled else ["test"] * n,
            "label": lab, "label_name": np.array(["a", "b"])[lab], "votes_smooth": np.full(n, -1),
            "votes_featured": np.full(n, -1), "votes_artifact": np.full(n, -1), "richness": np.full(n, np.nan)})
    return w.finalize()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    def make(n_shards, per_shard=20):
        return _write_sharded(tmp_path_factory.mktemp("cat") / f"ds{n_shards}", n_shards, per_shard)
    return make


class MeanPredictor:
    """A deterministic stand-in for :class:`labelsky.methods.predict.Predictor`: probabilities from the image mean
    (the catalog writer's predictor protocol: ``output``, ``class_names``, a call, ``extra``)."""

    output, class_names = "probs", ["a", "b"]

    def __init__(self, fn=None):
        self.fn = fn

    def __call__(self, x):
        if self.fn is not None:
            self.fn()
        m = x.mean(dim=(1, 2, 3))
        p = torch.sigmoid(m * 5)
        return {"output": torch.stack([1 - p, p], 1).numpy(), "embedding": x.flatten(1)[:, :4].numpy()}

    def extra(self, output, embedding) -> dict:
        return {}


_mean_fn = MeanPredictor()


def test_catalog_schema_and_fits(sharded, tmp_path):
    ds = sharded(3)
    pre = Preprocess([0, 1, 2], stretch="none")
    out = write_catalog(ds, tmp_path / "c.parquet", _mean_fn, transform=pre, batch_size=7, embedding=True,
                        progress=False)
    t = pq.read_table(out)
    assert t.column_names == ["id_str", "ra", "dec", "survey", "p_a", "p_b", "pred_label", "pred_class",
                              "confidence", "entropy", "embedding"]
    assert t.column("id_str").to_pylist() == ds.column("id_str").tolist()
    p = np.stack([t.column("p_a").to_numpy(), t.column("p_b").to_numpy()], 1)
    assert np.allclose(p.sum(1), 1, atol=1e-6)
    assert np.allclose(t.column("confidence").to_numpy(), p.max(1))
    assert np.allclose(t.column("entropy").to_numpy(), -(p * np.log(p)).sum(1), atol=1e-5)
    assert not (tmp_path / "c.parquet.parts").exists()
    with pytest.raises(CatalogWriteError, match="exists"):
        write_catalog(ds, out, _mean_fn, transform=pre, progress=False)
    from astropy.table import Table

    f = write_catalog(ds, tmp_path / "c.fits", _mean_fn, transform=pre, embedding=True, progress=False)
    tab = Table.read(f)
    assert len(tab) == len(ds) and tab["embedding"].shape == (len(ds), 4) and str(tab["ra"].unit) == "deg"


def test_catalog_resumes_after_kill_without_duplicates(sharded, tmp_path):
    ds = sharded(5)
    pre = Preprocess([0, 1, 2], stretch="none")
    calls = {"n": 0}

    def count():
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt  # killed mid-way

    dying = MeanPredictor(count)

    with pytest.raises(KeyboardInterrupt):
        write_catalog(ds, tmp_path / "r.parquet", dying, transform=pre, batch_size=8, progress=False)
    parts = sorted((tmp_path / "r.parquet.parts").glob("part-*.parquet"))
    assert 0 < len(parts) < 5
    mtimes = {p.name: p.stat().st_mtime_ns for p in parts}
    # another model may not continue these parts
    with pytest.raises(CatalogWriteError, match="another model"):
        write_catalog(ds, tmp_path / "r.parquet", _mean_fn, transform=pre, job={"run": "other"}, progress=False)
    calls["n"] = -1000
    out = write_catalog(ds, tmp_path / "r.parquet", dying, transform=pre, batch_size=8, progress=False)
    clean = write_catalog(ds, tmp_path / "clean.parquet", _mean_fn, transform=pre, batch_size=8, progress=False)
    a, b = pq.read_table(out), pq.read_table(clean)
    ids = a.column("id_str").to_pylist()
    assert len(ids) == len(set(ids)) == len(ds)
    assert a.equals(b)
    assert all(mtimes[p.name] for p in parts)  # earlier parts were reused, not recomputed
    assert calls["n"] - (-1000) < 20 - len(parts) * 3 + 3


def test_catalog_memory_is_flat(sharded, tmp_path):
    pre = Preprocess([0, 1, 2], stretch="none")
    peaks = []
    for n_shards in (2, 12):
        ds = sharded(n_shards, per_shard=40)
        tracemalloc.start()
        write_catalog(ds, tmp_path / f"m{n_shards}.parquet", _mean_fn, transform=pre, batch_size=16,
                      progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 200_000, peaks  # 6x the rows, about the same peak



def test_catalog_with_an_empty_shard(tmp_path):
    w = DatasetWriter(tmp_path / "ds", "decals", (3, 8, 8), classes=["a", "b"], n_shards=3)
    rng = np.random.default_rng(0)
    for s, n in enumerate([0, 5, 0]):
        w.write_shard(s, rng.normal(size=(n, 3, 8, 8)), {
            "id_str": [f"o{s}-{i}" for i in range(n)], "ra": np.full(n, 1.0), "dec": np.zeros(n),
            "survey": ["decals"] * n, "split": ["test"] * n, "label": np.zeros(n, int), "label_name": ["a"] * n,
            "votes_smooth": np.full(n, -1), "votes_featured": np.full(n, -1), "votes_artifact": np.full(n, -1),
            "richness": np.full(n, np.nan)})
    ds = w.finalize()
    out = write_catalog(ds, tmp_path / "c.parquet", _mean_fn, transform=Preprocess([0, 1, 2], stretch="none"),
                        embedding=True, progress=False)
    t = pq.read_table(out)
    assert t.num_rows == 5 and t.column("id_str").to_pylist() == [f"o1-{i}" for i in range(5)]




def test_partitioned_layout_opens_as_one_dataset(sharded, tmp_path):
    ds = sharded(4)
    pre = Preprocess([0, 1, 2], stretch="none")
    one = pq.read_table(write_catalog(ds, tmp_path / "one.parquet", _mean_fn, transform=pre, progress=False))
    out = write_catalog(ds, tmp_path / "cat", _mean_fn, transform=pre, progress=False)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [f"part-{s:05d}.parquet" for s in range(4)]
    md = pq.read_metadata(out / "_metadata")
    assert md.num_rows == len(ds) and md.num_row_groups == 4
    t = pads.parquet_dataset(str(out / "_metadata")).to_table()
    assert t.sort_by("id_str").equals(one.sort_by("id_str"))
    with pytest.raises(CatalogWriteError, match="exists"):
        write_catalog(ds, out, _mean_fn, transform=pre, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(CatalogWriteError, match="not a labelsky catalog"):
        write_catalog(ds, other, _mean_fn, transform=pre, progress=False, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_a_truncated_part_or_stray_temporary_file_is_redone(sharded, tmp_path):
    ds = sharded(3)
    pre = Preprocess([0, 1, 2], stretch="none")
    clean = pq.read_table(write_catalog(ds, tmp_path / "clean.parquet", _mean_fn, transform=pre, progress=False))
    out = write_catalog(ds, tmp_path / "cat", _mean_fn, transform=pre, progress=False)
    (out / "_metadata").unlink()  # as if killed before the end, with a damaged part and a stray temporary file
    (out / "part-00001.parquet").write_bytes(b"PAR1 truncated")
    (out / ".part-00002.parquet.abc.tmp").write_bytes(b"half")
    write_catalog(ds, out, _mean_fn, transform=pre, progress=False)
    assert not list(out.glob(".*.tmp"))
    t = pads.parquet_dataset(str(out / "_metadata")).to_table()
    assert t.sort_by("id_str").equals(clean.sort_by("id_str"))


# ----------------------------------------------------------------------------- engines on a trained run
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny transfer-learning run and a 12-shard dataset to catalogue."""
    from labelsky import train
    from labelsky.methods.transfer import TransferConfig

    root = tmp_path_factory.mktemp("engines")
    ds = _write_sharded(root / "ds", 12, per_shard=16, size=16, seed=3, labelled=True)
    cfg = TransferConfig(backbone="resnet10t", hidden=[16], dropout=0.0, batch_size=32, max_epochs=1)
    train("transfer", root / "run", {"data": ds}, cfg, progress=False)
    return root, ds


def _catalog_cmd(root, out, *extra):
    return [sys.executable, "-m", "labelsky", "catalog", "--run", str(root / "run"), "--data", str(root / "ds"),
            "--out", str(out), "--batch-size", "8", *extra]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory):
    """The local engine's catalog of the trained run, in this process."""
    from labelsky.methods.predict import Predictor

    root, ds = trained
    out = tmp_path_factory.mktemp("ref") / "ref.parquet"
    predictor = Predictor(root / "run", device="cpu", channels_last=True)  # as labelsky catalog predicts
    return pq.read_table(write_catalog(ds, out, predictor, batch_size=8, progress=False))


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_kill_9_mid_run_then_rerun_gives_every_row_once(trained, reference, tmp_path, engine):
    """Killed after two parts (whole process group, SIGKILL), rerun: every id once, the local engine's rows."""
    root, ds = trained
    out = tmp_path / "cat"  # partitioned: the parts stay visible while the job runs
    cmd = _catalog_cmd(root, out, "--engine", engine, "--ray-workers", "2")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    t0 = time.time()
    while len(list(out.glob("part-*.parquet"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() - t0 < 300, "no part written in 5 minutes"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: driver, and for Ray its workers
    proc.wait()
    done = len(list(out.glob("part-*.parquet")))
    assert not (out / "_metadata").exists() and done < ds.n_shards, "the job was not killed mid-run"
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    t = pads.parquet_dataset(str(out / "_metadata")).to_table()
    ids = t.column("id_str").to_pylist()
    assert len(ids) == len(set(ids)) == len(ds) and set(ids) == set(ds.column("id_str").tolist())
    # the same catalog as the local engine's, row for row (parts are in shard order)
    assert t.column("id_str").to_pylist() == reference.column("id_str").to_pylist()
    assert t.schema.equals(reference.schema)
    for name in t.column_names:
        x, y = t.column(name).to_numpy(zero_copy_only=False), reference.column(name).to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6, err_msg=name)
        else:
            assert (x == y).all(), name


def test_overwrite_replaces_only_labelsky_catalogs_and_nothing_inside_the_dataset(sharded, tmp_path):
    from labelsky.catalog.writer import is_labelsky_catalog
    from labelsky.errors import OutputError

    ds = sharded(2)
    pre = Preprocess([0, 1, 2], stretch="none")
    for name in ("c.parquet", "c.fits"):
        out = write_catalog(ds, tmp_path / name, _mean_fn, transform=pre, progress=False)
        assert is_labelsky_catalog(out)
        write_catalog(ds, out, _mean_fn, transform=pre, progress=False, overwrite=True)  # labelsky's: replaced
    mine = tmp_path / "mine.parquet"
    pq.write_table(pq.read_table(tmp_path / "c.parquet").replace_schema_metadata({}), mine)  # e.g. a user's table
    assert not is_labelsky_catalog(mine)
    with pytest.raises(CatalogWriteError, match="not written by labelsky"):
        write_catalog(ds, mine, _mean_fn, transform=pre, progress=False, overwrite=True)
    assert mine.exists()
    part = sorted((ds.path / "catalog").glob("*.parquet"))[0]
    before = part.read_bytes()
    for target in (part, ds.path, ds.path / "x.parquet"):
        with pytest.raises(OutputError, match="input"):
            write_catalog(ds, target, _mean_fn, transform=pre, progress=False, overwrite=True)
    assert part.read_bytes() == before


def test_a_second_writer_of_the_same_catalog_is_refused_and_a_stale_lock_taken_over(sharded, tmp_path):
    import json
    import os
    import socket

    ds = sharded(2)
    pre = Preprocess([0, 1, 2], stretch="none")
    out = tmp_path / "locked.parquet"
    lock = tmp_path / "locked.parquet.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive
    with pytest.raises(CatalogWriteError, match=f"being written by process {os.getpid()}"):
        write_catalog(ds, out, _mean_fn, transform=pre, progress=False)
    assert not out.exists() and not (tmp_path / "locked.parquet.parts").exists()
    lock.write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname(), "started": "then"}))  # dead
    assert write_catalog(ds, out, _mean_fn, transform=pre, progress=False) == out
    assert not lock.exists()  # released


def test_overwrite_of_a_partitioned_catalog_deletes_only_its_own_files(sharded, tmp_path, recwarn):
    """A `_job.json` copied into a user's folder (or a file of the user's dropped into a catalog folder): the
    overwrite removes the catalog's parts and records, and leaves and names everything else."""
    ds = sharded(2)
    pre = Preprocess([0, 1, 2], stretch="none")
    out = write_catalog(ds, tmp_path / "cat", _mean_fn, transform=pre, progress=False)
    (out / "thesis.tex").write_text("keep")
    out = write_catalog(ds, out, _mean_fn, transform=pre, progress=False, overwrite=True)
    assert (out / "thesis.tex").read_text() == "keep" and (out / "_metadata").is_file()
    assert any("thesis.tex" in str(w.message) for w in recwarn)


def test_a_full_disk_while_a_part_is_written_is_one_plain_error_and_the_rerun_resumes(sharded, tmp_path,
                                                                                       monkeypatch):
    import labelsky.catalog.shards as shards

    ds = sharded(3)
    pre = Preprocess([0, 1, 2], stretch="none")
    out = tmp_path / "full.parquet"
    real, calls = shards.pq.write_table, []

    def full_disk(table, where, *a, **k):  # the disk fills on the second part, as pyarrow reports it
        calls.append(where)
        if len(calls) == 2:
            raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        return real(table, where, *a, **k)

    monkeypatch.setattr(shards.pq, "write_table", full_disk)
    with pytest.raises(CatalogWriteError) as err:
        write_catalog(ds, out, _mean_fn, transform=pre, progress=False)
    text = str(err.value)
    assert text.startswith(f"no space left on the disk of {out}") and "errno" not in text.lower(), text
    assert "rerun the same command" in text and not (tmp_path / "full.parquet.lock").exists()
    monkeypatch.setattr(shards.pq, "write_table", real)
    assert write_catalog(ds, out, _mean_fn, transform=pre, progress=False) == out
    assert pq.read_table(out).num_rows == len(ds)
