"""Galaxy10 DECaLS importer on small HDF5 files with the astroNN layout."""

import csv
import json

import h5py
import numpy as np
import pytest

from labelsky.data.importers.base import ImportSettings
from labelsky.data.importers.galaxy10 import import_galaxy10
from labelsky.data.io import DatasetError
from labelsky.data.simulate.galaxy10 import GALAXY10_CLASSES

N, HW = 20, 32
GZ = ("smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk", "smooth-or-featured_artifact")


def galaxy10_arrays(n=N, hw=HW):
    rng = np.random.default_rng(3)
    return {
        "images": rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8),
        "ans": (np.arange(n) % 10).astype(np.uint8),
        "ra": np.linspace(10.0, 20.0, n),
        "dec": np.linspace(-5.0, 5.0, n),
        "redshift": np.linspace(0.01, 0.2, n).astype(np.float32),
        "pxscale": np.full(n, 0.262),
    }


def write_galaxy10(path, **override):
    """A Galaxy10 DECaLS-layout file; ``override`` replaces datasets (None leaves one out)."""
    arrays = {**galaxy10_arrays(), **override}
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            if value is not None:
                f.create_dataset(name, data=value)
    return arrays


def settings(**kw):
    return ImportSettings(shard_size=8, **kw)


def test_round_trip_labels_and_columns(tmp_path):
    arr = write_galaxy10(tmp_path / "g10.h5")
    ds, report = import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(), progress=False)
    assert len(ds) == N and ds.n_shards == 3 and report["n_rejected"] == 0
    assert ds.survey.name == "decals" and ds.bands == ["g", "r", "z"] and ds.image_shape == (3, HW, HW)
    assert ds.classes == list(GALAXY10_CLASSES) and ds.meta["flux_unit"] == "display"
    expected = arr["images"].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(ds.images(), expected)
    assert ds.column("id_str").tolist() == [f"galaxy10-{i}" for i in range(N)]
    np.testing.assert_array_equal(ds.column("label"), arr["ans"])
    assert ds.column("label_name").tolist() == [GALAXY10_CLASSES[a] for a in arr["ans"]]
    np.testing.assert_allclose(ds.column("ra"), arr["ra"])
    np.testing.assert_allclose(ds.column("redshift"), arr["redshift"], rtol=1e-6)
    np.testing.assert_allclose(ds.column("pxscale"), arr["pxscale"])
    assert set(ds.column("split")) <= {"train", "val", "test"} and len(set(ds.column("split"))) > 1
    assert (ds.column("votes_smooth") == -1).all()


def test_ids_from_file_and_resize(tmp_path):
    ids = np.array([f"J{i:04d}".encode() for i in range(N)])
    arr = write_galaxy10(tmp_path / "g10.h5", id_str=ids)
    ds, _ = import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(), progress=False, size=16)
    assert ds.column("id_str").tolist() == [i.decode() for i in ids]
    assert ds.image_shape == (3, 16, 16)
    im = ds.images()
    assert im.dtype == np.float32 and im.min() >= 0 and im.max() <= 1
    mean = arr["images"].transpose(0, 3, 1, 2).mean(axis=(2, 3)) / 255
    np.testing.assert_allclose(im.mean(axis=(2, 3)), mean, atol=0.02)


def _vote_csv(path, rows, key):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*key, *GZ])
        w.writerows(rows)


def test_votes_joined_on_id(tmp_path):
    write_galaxy10(tmp_path / "g10.h5")
    rows = [[f"galaxy10-{i}", 10 + i, 20 - i, i % 3] for i in range(0, N, 2)]
    rows[1][3] = ""  # a missing count
    rows.append(["not-in-galaxy10", 1, 2, 3])
    _vote_csv(tmp_path / "votes.csv", rows, ["id_str"])
    ds, report = import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(),
                                 votes=tmp_path / "votes.csv", progress=False)
    assert report["n_votes_matched"] == N // 2
    ids = ds.column("id_str").tolist()
    sm, fe, ar = (ds.column(c) for c in ("votes_smooth", "votes_featured", "votes_artifact"))
    i4 = ids.index("galaxy10-4")
    assert (sm[i4], fe[i4], ar[i4]) == (14, 16, 1)
    assert ar[ids.index("galaxy10-2")] == -1
    assert sm[ids.index("galaxy10-3")] == -1 and fe[ids.index("galaxy10-3")] == -1
    assert json.loads((tmp_path / "ds" / "import_report.json").read_text())["n_votes_matched"] == N // 2


def test_votes_matched_by_position(tmp_path):
    arr = write_galaxy10(tmp_path / "g10.h5")
    off = 0.4 / 3600
    rows = [[arr["ra"][i], arr["dec"][i] + off, 30 + i, 5, 0] for i in (1, 7, 12)]
    rows.append([arr["ra"][15], arr["dec"][15] + 5 / 3600, 99, 99, 99])  # 5 arcsec away: no match
    _vote_csv(tmp_path / "votes.csv", rows, ["ra", "dec"])
    ds, report = import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(),
                                 votes=tmp_path / "votes.csv", progress=False)
    assert report["n_votes_matched"] == 3
    sm = dict(zip(ds.column("id_str"), ds.column("votes_smooth")))
    assert [sm[f"galaxy10-{i}"] for i in (1, 7, 12, 15)] == [31, 37, 42, -1]


def test_votes_table_without_key_is_refused(tmp_path):
    write_galaxy10(tmp_path / "g10.h5")
    _vote_csv(tmp_path / "votes.csv", [["x", 1, 2, 3]], ["name"])
    with pytest.raises(DatasetError, match="no column 'id_str'.*ra"):
        import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", votes=tmp_path / "votes.csv", progress=False)


def test_bad_positions_rejected_and_reported(tmp_path):
    ra = galaxy10_arrays()["ra"].copy()
    ra[5], ra[17] = np.nan, 400.0
    write_galaxy10(tmp_path / "g10.h5", ra=ra)
    ds, report = import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(), progress=False)
    assert len(ds) == N - 2 and report["n_rejected"] == 2
    bad = {p["id_str"]: p for p in report["problems"]}
    assert set(bad) == {"galaxy10-5", "galaxy10-17"}
    assert bad["galaxy10-5"]["row"] == 5 and "ra" in bad["galaxy10-5"]["reason"]
    assert bad["galaxy10-17"]["file"].endswith("g10.h5")
    assert "galaxy10-5" not in ds.column("id_str").tolist()


def _wrong(name):
    a = galaxy10_arrays()
    return {
        "missing ans": ({"ans": None}, "'ans' is missing"),
        "float images": ({"images": a["images"].astype(np.float32)}, "'images' has dtype float32"),
        "images without channels": ({"images": a["images"][..., 0]}, "'images'.*expected uint8 \\(N, H, W, 3\\)"),
        "four channels": ({"images": np.concatenate([a["images"], a["images"][..., :1]], axis=3)}, "'images'"),
        "short ans": ({"ans": a["ans"][:-1]}, "'ans' has 19 rows but 'images' has 20"),
        "short dec": ({"dec": a["dec"][:-3]}, "'dec' has 17 rows"),
        "float ans": ({"ans": a["ans"].astype(float)}, "'ans' has dtype float64"),
        "class 12": ({"ans": np.where(np.arange(N) == 6, 12, a["ans"]).astype(np.uint8)}, "'ans': row 6 = 12"),
        "2-d ra": ({"ra": a["ra"].reshape(N, 1)}, "'ra' has dtype float64 and shape \\(20, 1\\)"),
    }[name]


@pytest.mark.parametrize("case", ["missing ans", "float images", "images without channels", "four channels",
                                  "short ans", "short dec", "float ans", "class 12", "2-d ra"])
def test_layout_errors_name_file_and_dataset(tmp_path, case):
    override, message = _wrong(case)
    write_galaxy10(tmp_path / "g10.h5", **override)
    with pytest.raises(DatasetError, match=message) as err:
        import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", progress=False)
    assert "g10.h5" in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_not_hdf5_or_missing(tmp_path):
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="bad.h5: cannot read as HDF5"):
        import_galaxy10(tmp_path / "bad.h5", tmp_path / "ds", progress=False)
    with pytest.raises(DatasetError, match="none.h5: Galaxy10 file not found"):
        import_galaxy10(tmp_path / "none.h5", tmp_path / "ds", progress=False)


def test_complete_refused_overwrite_and_resume(tmp_path):
    src, out = tmp_path / "g10.h5", tmp_path / "ds"
    write_galaxy10(src)
    ds, _ = import_galaxy10(src, out, settings=settings(), progress=False)
    first = ds.images()
    with pytest.raises(DatasetError, match="complete dataset"):
        import_galaxy10(src, out, settings=settings(), progress=False)
    ds, _ = import_galaxy10(src, out, settings=settings(), overwrite=True, progress=False)
    assert len(ds) == N
    # an interrupted import: last shard missing, metadata not complete -> the next run finishes it
    meta = json.loads((out / "labelsky.json").read_text())
    (out / "labelsky.json").write_text(json.dumps({**meta, "complete": False}))
    (out / "catalog" / "part-00002.parquet").unlink()
    old = (out / "catalog" / "part-00000.parquet").stat().st_mtime_ns
    ds, report = import_galaxy10(src, out, settings=settings(), progress=False)
    assert len(ds) == N and report["n_written"] == N
    assert (out / "catalog" / "part-00000.parquet").stat().st_mtime_ns == old
    np.testing.assert_array_equal(ds.images(), first)
    (out / "labelsky.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(DatasetError, match="other inputs or settings"):
        import_galaxy10(src, out, settings=settings(seed=5), progress=False)


def test_reads_one_shard_of_images_at_a_time(tmp_path, monkeypatch):
    import labelsky.data.importers.galaxy10 as g10

    blocks = []

    class Counting(g10._ShardReader):
        def __call__(self, rec):
            shard = self.shard
            out = super().__call__(rec)
            if self.shard != shard:
                blocks.append(len(self.block))
            return out

    monkeypatch.setattr(g10, "_ShardReader", Counting)
    write_galaxy10(tmp_path / "g10.h5")
    import_galaxy10(tmp_path / "g10.h5", tmp_path / "ds", settings=settings(), progress=False)
    assert blocks == [8, 8, 4]


def test_one_corrupt_chunk_rejects_only_its_row(tmp_path):
    """A damaged HDF5 chunk (one image) costs that image, not the 8-row block it is read in."""
    arr = galaxy10_arrays()
    path = tmp_path / "g10.h5"
    with h5py.File(path, "w") as f:
        for name, value in arr.items():
            if name == "images":
                f.create_dataset(name, data=value, chunks=(1, *value.shape[1:]), compression="gzip")
            else:
                f.create_dataset(name, data=value)
    with h5py.File(path, "r") as f:
        info = f["images"].id.get_chunk_info_by_coord((5, 0, 0, 0))  # the chunk of image 5
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)  # garbage where the compressed chunk was
    ds, report = import_galaxy10(path, tmp_path / "ds", settings=settings(), progress=False)
    rejected = [p for p in report["problems"] if p["action"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["id_str"] == "galaxy10-5" and "corrupt chunk" in rejected[0]["reason"]
    assert len(ds) == N - 1
    keep = [i for i in range(N) if i != 5]
    np.testing.assert_array_equal(ds.images(), arr["images"][keep].transpose(0, 3, 1, 2).astype(np.float32) / 255)
