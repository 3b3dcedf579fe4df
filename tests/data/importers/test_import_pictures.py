"""PNG / JPEG picture importer on small pictures and catalogs written by the tests."""

import csv

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from labelsky.data.importers.base import ImportSettings
from labelsky.data.importers.pictures import import_pictures
from labelsky.data.io import DatasetError

HW = 24
GZ = ("smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk", "smooth-or-featured_artifact")


def _rgb(i, hw=HW):
    return np.random.default_rng(i).integers(0, 256, (hw, hw, 3), dtype=np.uint8)


def write_pictures(root):
    """12 good pictures (8 PNG, 4 JPEG) plus a truncated, a missing, a grayscale and a 32 x 32 one; the catalog."""
    pics = root / "pics"
    pics.mkdir()
    rows, pixels = [], {}
    for i in range(16):
        name = f"gal{i:02d}.{'jpg' if 8 <= i < 12 else 'png'}"
        if i == 12:  # truncated PNG
            Image.fromarray(_rgb(i)).save(pics / name)
            data = (pics / name).read_bytes()
            (pics / name).write_bytes(data[:len(data) // 2])
        elif i == 13:  # missing file
            pass
        elif i == 14:  # grayscale
            Image.fromarray(_rgb(i)[..., 0]).save(pics / name)
        elif i == 15:  # other size
            Image.fromarray(_rgb(i, 32)).save(pics / name)
        else:
            Image.fromarray(_rgb(i)).save(pics / name, **({"quality": 95} if name.endswith("jpg") else {}))
            with Image.open(pics / name) as im:
                pixels[f"gz-{i}"] = np.asarray(im.convert("RGB"))
        label = ["smooth", "featured", ""][i % 3]
        votes = [i, 20 - i, ""] if i % 3 != 2 else ["", "", ""]
        rows.append([f"gz-{i}", 150.0 + i, 2.0 - 0.1 * i, f"pics/{name}", label, *votes])
    with open(root / "cat.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id_str", "ra", "dec", "file", "label_name", *GZ])
        w.writerows(rows)
    return root / "cat.csv", pixels


@pytest.fixture
def pictures(tmp_path):
    return write_pictures(tmp_path)


def settings(**kw):
    return ImportSettings(survey="decals", shard_size=5, **kw)


def test_round_trip_labels_votes_splits(tmp_path, pictures):
    cat, pixels = pictures
    ds, report = import_pictures(cat, tmp_path / "ds", progress=False)
    assert len(ds) == 12 and report["n_input"] == 16 and report["n_rejected"] == 4
    assert ds.survey.name == "decals" and ds.bands == ["g", "r", "z"] and ds.image_shape == (3, HW, HW)
    assert ds.meta["flux_unit"] == "display"
    ids = ds.column("id_str").tolist()
    assert set(ids) == set(pixels)
    for k, i in enumerate(ids):
        np.testing.assert_array_equal(ds.image(k), pixels[i].transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    assert ds.classes == ["featured", "smooth"]
    names = dict(zip(ids, ds.column("label_name")))
    labels = dict(zip(ids, ds.column("label")))
    assert names["gz-0"] == "smooth" and labels["gz-0"] == 1 and names["gz-1"] == "featured" and labels["gz-1"] == 0
    assert names["gz-2"] == "" and labels["gz-2"] == -1
    split = dict(zip(ids, ds.column("split")))
    assert split["gz-2"] == "unlabelled" and {split[i] for i in ids if names[i]} <= {"train", "val", "test"}
    sm, fe, ar = (dict(zip(ids, ds.column(c))) for c in ("votes_smooth", "votes_featured", "votes_artifact"))
    assert (sm["gz-4"], fe["gz-4"], ar["gz-4"]) == (4, 16, -1)
    assert (sm["gz-5"], fe["gz-5"]) == (-1, -1)
    assert dict(zip(ids, ds.column("file")))["gz-9"] == "pics/gal09.jpg"


def test_bad_pictures_reported(tmp_path, pictures):
    cat, _ = pictures
    _, report = import_pictures(cat, tmp_path / "ds", settings=settings(), progress=False)
    bad = {p["id_str"]: p for p in report["problems"]}
    assert set(bad) == {"gz-12", "gz-13", "gz-14", "gz-15"}
    assert all(p["action"] == "rejected" for p in bad.values())
    assert bad["gz-12"]["file"].endswith("gal12.png") and "truncated" in bad["gz-12"]["reason"]
    assert bad["gz-13"]["file"].endswith("gal13.png") and "not found" in bad["gz-13"]["reason"]
    assert bad["gz-14"]["row"] == 14 and "grayscale" in bad["gz-14"]["reason"]
    assert "32x32" in bad["gz-15"]["reason"] and "size" in bad["gz-15"]["reason"]
    assert (tmp_path / "ds" / "import_report.json").exists()


def test_size_resamples_every_picture(tmp_path, pictures):
    cat, _ = pictures
    ds, report = import_pictures(cat, tmp_path / "ds", settings=settings(), size=16, progress=False)
    assert ds.image_shape == (3, 16, 16) and len(ds) == 13 and "gz-15" in ds.column("id_str").tolist()
    im = ds.images()
    assert im.min() >= 0 and im.max() <= 1
    assert {p["id_str"] for p in report["problems"]} == {"gz-12", "gz-13", "gz-14"}


def test_grayscale_needs_one_band(tmp_path):
    (tmp_path / "p").mkdir()
    gray = [np.random.default_rng(i).integers(0, 256, (HW, HW), dtype=np.uint8) for i in range(3)]
    for i, g in enumerate(gray):
        Image.fromarray(g).save(tmp_path / "p" / f"{i}.png")
    Image.fromarray(_rgb(9)).save(tmp_path / "p" / "rgb.png")
    cat = Table({"id_str": ["a", "b", "c", "d"], "ra": [1.0, 2.0, 3.0, 4.0], "dec": [0.0] * 4,
                 "file": ["0.png", "1.png", "2.png", "rgb.png"]})
    ds, report = import_pictures(cat, tmp_path / "ds", settings=settings(bands=["r"]), base_dir=tmp_path / "p",
                                 progress=False)
    assert ds.bands == ["r"] and ds.image_shape == (1, HW, HW) and len(ds) == 3
    np.testing.assert_array_equal(ds.images()[:, 0], np.stack(gray).astype(np.float32) / np.float32(255))
    assert [p["id_str"] for p in report["problems"]] == ["d"] and "colour" in report["problems"][0]["reason"]


def test_bands_must_fit_pictures(tmp_path, pictures):
    cat, _ = pictures
    with pytest.raises(DatasetError, match="sdss.*give settings.bands"):
        import_pictures(cat, tmp_path / "ds", settings=ImportSettings(survey="sdss"), progress=False)
    with pytest.raises(DatasetError, match="missing column.*'file'"):
        import_pictures(Table({"id_str": ["a"], "ra": [1.0], "dec": [0.0]}), tmp_path / "ds", progress=False)


def test_complete_refused_unless_overwrite(tmp_path, pictures):
    cat, _ = pictures
    import_pictures(cat, tmp_path / "ds", settings=settings(), progress=False)
    with pytest.raises(DatasetError, match="complete dataset"):
        import_pictures(cat, tmp_path / "ds", settings=settings(), progress=False)
    ds, _ = import_pictures(cat, tmp_path / "ds", settings=settings(), overwrite=True, progress=False)
    assert len(ds) == 12
    (tmp_path / "ds" / "catalog" / "part-00003.parquet").unlink()
    meta = (tmp_path / "ds" / "labelsky.json")
    meta.write_text(meta.read_text().replace('"complete": true', '"complete": false'))
    ds, report = import_pictures(cat, tmp_path / "ds", settings=settings(), progress=False)
    assert len(ds) == 12 and report["n_rejected"] == 4
