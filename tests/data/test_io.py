import pickle

import numpy as np
import pyarrow as pa
import pytest

from conftest import CLASSES, SHAPE, make_columns, make_images, write_dataset
from labelsky.data.io import CatalogError, DatasetError, DatasetWriter, LabelskyDataset, open_dataset
from labelsky.errors import OutputError
from labelsky.utils import atomic_path, atomic_write_text


def _writer(path, **kw):
    kw.setdefault("classes", CLASSES)
    kw.setdefault("n_shards", 1)
    return DatasetWriter(path, "decals", SHAPE, **kw)


# --------------------------------------------------------------------- round trip
def test_round_trip_images_and_catalog(tiny_dataset):
    path, imgs, cols = tiny_dataset
    ds = open_dataset(path)
    assert isinstance(ds, LabelskyDataset)
    assert len(ds) == len(imgs) == 12 and ds.n_shards == 3
    assert ds.image_shape == SHAPE and ds.bands == ["g", "r", "z"] and ds.classes == CLASSES
    assert ds.survey.name == "decals"
    assert ds.meta["complete"] and ds.meta["shard_sizes"] == [5, 4, 3] and ds.meta["n_objects"] == 12
    for i in range(len(ds)):
        im = ds.image(i)
        assert im.dtype == np.float32 and im.shape == SHAPE
        np.testing.assert_array_equal(im, imgs[i])
    np.testing.assert_array_equal(ds.images(), imgs)
    for name in ("id_str", "survey", "split", "label_name"):
        assert ds.column(name).tolist() == list(cols[name])
    for name in ("ra", "dec", "label", "votes_smooth", "richness", "true_mag_r"):
        np.testing.assert_array_equal(ds.column(name), np.asarray(cols[name]))
    assert ds.column("true_mag_r").dtype == np.float32
    np.testing.assert_array_equal(ds.column("shard"), [0] * 5 + [1] * 4 + [2] * 3)
    np.testing.assert_array_equal(ds.column("row"), [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2])
    assert ds.locate(6) == (1, 1)
    with pytest.raises(IndexError, match="out of range"):
        ds.image(12)
    with pytest.raises(KeyError, match="no column 'nope'"):
        ds.column("nope")


def test_images_unsorted_and_repeated_indices(tiny_dataset):
    ds = open_dataset(tiny_dataset[0])
    idx = [11, 3, 3, 7, 0, 11, 5, 4, 4]
    got = ds.images(idx)
    assert got.shape == (len(idx), *SHAPE)
    np.testing.assert_array_equal(got, np.stack([ds.image(i) for i in idx]))
    # every row of a shard, shuffled and repeated
    idx = [4, 0, 2, 1, 3, 0]
    np.testing.assert_array_equal(ds.images(idx), np.stack([ds.image(i) for i in idx]))
    assert ds.images([]).shape == (0, *SHAPE)


def test_pickle_then_read(tiny_dataset):
    path, imgs, _ = tiny_dataset
    ds = open_dataset(path)
    ds.image(0)  # opens a handle that must not travel with the pickle
    ds2 = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(ds2.image(7), imgs[7])
    np.testing.assert_array_equal(ds.image(7), imgs[7])


# --------------------------------------------------------------------- catalog errors
def test_missing_column(tmp_path):
    cols = make_columns(3)
    del cols["dec"]
    with pytest.raises(CatalogError, match=r"missing column\(s\) \['dec'\]"):
        _writer(tmp_path / "d").write_shard(0, make_images(3), cols)


def test_duplicate_id(tmp_path):
    cols = make_columns(3, id_str=["a", "dup-7", "dup-7"])
    with pytest.raises(CatalogError, match=r"'id_str' = 'dup-7' appears more than once \(rows \[1, 2\]\)"):
        _writer(tmp_path / "d").write_shard(0, make_images(3), cols)


def test_duplicate_id_across_shards(tmp_path):
    w = _writer(tmp_path / "d", n_shards=2)
    w.write_shard(0, make_images(3), make_columns(3))
    w.write_shard(1, make_images(3), make_columns(3, start=2))  # obj-0002 in both shards
    with pytest.raises(CatalogError, match="'obj-0002' appears more than once"):
        w.finalize()


def test_ra_out_of_range(tmp_path):
    ra = np.array([10.0, 20.0, 400.0])
    with pytest.raises(CatalogError, match=r"row 2 \(id_str='obj-0002'\): field 'ra' = 400\.0 is outside \[0, 360\)"):
        _writer(tmp_path / "d").write_shard(0, make_images(3), make_columns(3, ra=ra))


def test_bad_split(tmp_path):
    cols = make_columns(3, split=["train", "training", "val"])
    with pytest.raises(CatalogError, match=r"row 1 .*field 'split' = 'training'; expected one of"):
        _writer(tmp_path / "d").write_shard(0, make_images(3), cols)


def test_label_out_of_range(tmp_path):
    cols = make_columns(3, label=np.array([0, 3, 1], np.int16))
    with pytest.raises(CatalogError, match=r"row 1 .*field 'label' = 3; expected -1 or a class index in \[0, 3\)"):
        _writer(tmp_path / "d").write_shard(0, make_images(3), cols)


def test_corrupt_parquet_part(tmp_path):
    path = tmp_path / "d"
    write_dataset(path)
    part = path / "catalog" / "part-00001.parquet"
    part.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(CatalogError, match=r"part-00001\.parquet: unreadable catalog"):
        open_dataset(path)


# --------------------------------------------------------------------- dataset lifecycle
def test_incomplete_dataset(tmp_path):
    path = tmp_path / "d"
    write_dataset(path, finalize=False)
    with pytest.raises(DatasetError, match="incomplete"):
        open_dataset(path)


def test_no_such_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        open_dataset(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(OutputError, match="not made by labelsky"):
        _writer(tmp_path / "other")
    assert (tmp_path / "other" / "x.txt").read_text() == "x"  # never deleted


def test_complete_dataset_not_reopened_without_overwrite(tmp_path):
    path = tmp_path / "d"
    write_dataset(path, sizes=(2,))
    with pytest.raises(DatasetError, match="already holds a complete dataset; pass --overwrite"):
        _writer(path, config={"seed": 1})
    w = _writer(path, config={"seed": 1}, overwrite=True)
    assert not w.has_shard(0)


def test_resume_same_config(tmp_path):
    path = tmp_path / "d"
    write_dataset(path, sizes=(2, 3, 4), config={"seed": 5}, finalize=False)
    # shard 1 never finished: remove its catalog part (written last)
    (path / "catalog" / "part-00001.parquet").unlink()
    w = DatasetWriter(path, "decals", SHAPE, classes=CLASSES, n_shards=3, config={"seed": 5})
    assert w.has_shard(0) and w.has_shard(2) and not w.has_shard(1)
    assert w.completed_shards() == [0, 2]
    with pytest.raises(DatasetError, match=r"shard\(s\) \[1\] missing"):
        w.finalize()
    w.write_shard(1, make_images(3, 2), make_columns(3, 2))
    ds = w.finalize()
    assert len(ds) == 9
    np.testing.assert_array_equal(ds.image(3), make_images(3, 2)[1])


def test_resume_other_config(tmp_path):
    path = tmp_path / "d"
    write_dataset(path, sizes=(2, 2), config={"seed": 5}, finalize=False)
    with pytest.raises(DatasetError, match="unfinished dataset made from other inputs or settings"):
        DatasetWriter(path, "decals", SHAPE, classes=CLASSES, n_shards=2, config={"seed": 6})


def test_write_shard_shape_errors(tmp_path):
    w = _writer(tmp_path / "d")
    with pytest.raises(DatasetError, match=r"images have shape \(2, 3, 4, 4\), expected \(n, 3, 8, 8\)"):
        w.write_shard(0, np.zeros((2, 3, 4, 4)), make_columns(2))
    with pytest.raises(DatasetError, match="3 catalog rows for 2 images"):
        w.write_shard(0, make_images(2), make_columns(3))
    with pytest.raises(DatasetError, match=r"image_shape \(4, 8, 8\) must be \(bands=3"):
        DatasetWriter(tmp_path / "e", "decals", (4, 8, 8))
    assert not w.has_shard(0)


def test_catalog_table_input(tmp_path):
    w = _writer(tmp_path / "d")
    w.write_shard(0, make_images(2), pa.table(make_columns(2)))
    assert len(w.finalize()) == 2


# --------------------------------------------------------------------- atomic writes
def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written new content")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_failed_shard_write_leaves_no_temporary(tmp_path, monkeypatch):
    import labelsky.data.io as io

    path = tmp_path / "d"
    w = _writer(path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        w.write_shard(0, make_images(2), make_columns(2))
    assert not w.has_shard(0)
    assert not list((path / "catalog").iterdir())
    assert [p.name for p in (path / "images").iterdir()] == ["shard-00000.h5"]


def test_written_files_follow_umask(tiny_dataset):
    # mkstemp creates 0600 files; dataset files must be readable like any other file the user writes
    import os

    from labelsky.utils import _umask

    expected = 0o666 & ~_umask()
    path = tiny_dataset[0]
    for p in [path / "labelsky.json", *path.glob("images/*.h5"), *path.glob("catalog/*.parquet")]:
        assert os.stat(p).st_mode & 0o777 == expected, p
