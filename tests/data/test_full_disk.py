"""A full disk during an import: one clear error, nothing half-written left, and the same command resumes.

A 3 MB tmpfs stands in for the full disk (it needs root and ``mount``; the test is skipped elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from labelsky.data.io import DatasetWriter, open_dataset


def _mount(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.fixture()
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not _mount(disk, "3m"):
        pytest.skip("needs root and mount to make a small file system")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_full_disk_during_import_is_one_error_and_the_rerun_resumes(tmp_path, small_disk):
    from labelsky.data.importers.fits import export_fits_cutouts

    n = 120  # 64 x 64 x 3 float32: ~6 MB of shards, twice the disk
    w = DatasetWriter(tmp_path / "src", "decals", (3, 64, 64), classes=["a", "b"], n_shards=1, config={})
    cols = {"id_str": [f"o{i}" for i in range(n)], "ra": np.linspace(1, 2, n), "dec": np.zeros(n),
            "survey": ["decals"] * n, "split": ["train"] * n, "label": (np.arange(n) % 2).astype(np.int16),
            "label_name": [["a", "b"][i % 2] for i in range(n)], "richness": np.full(n, np.nan, np.float32),
            **{v: np.full(n, -1, np.int32) for v in ("votes_smooth", "votes_featured", "votes_artifact")}}
    w.write_shard(0, np.random.default_rng(0).normal(size=(n, 3, 64, 64)).astype(np.float32), cols)
    w.finalize()
    cat = export_fits_cutouts(open_dataset(tmp_path / "src"), tmp_path / "cut")
    out = small_disk / "out"
    cmd = [sys.executable, "-m", "labelsky", "import", "fits-cutouts", str(cat), "--survey", "decals", "--size",
           "64", "--shard-size", "16", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    err = [line for line in r.stderr.splitlines() if line.startswith("labelsky:")]
    assert r.returncode == 2, r.stderr[-2000:]  # not a crash (139) of the HDF5 library
    assert "Traceback" not in r.stderr and len(err) == 1 and "no space left" in err[0]
    assert not list(out.rglob("*.tmp"))  # nothing half-written is left behind
    kept = sorted(p.name for p in (out / "images").glob("shard-*.h5"))
    assert kept  # the shards that fitted are kept ...
    subprocess.run(["mount", "-o", "remount,size=40m", str(small_disk)], check=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ds = open_dataset(out)
    assert len(ds) == n and ds.column("id_str").tolist() == [f"o{i}" for i in range(n)]  # ... and resumed from
    np.testing.assert_array_equal(ds.images([0, n - 1]), open_dataset(tmp_path / "src").images([0, n - 1]))
