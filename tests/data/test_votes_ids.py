"""Joining Galaxy Zoo vote tables on the id columns of the published catalogues (GZ DECaLS, GZ2, GZ DESI)."""

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

from labelsky.cli import main
from labelsky.data.importers.votes import ID_COLUMNS, join_votes
from labelsky.data.io import DatasetError

GZD = ("smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk", "smooth-or-featured_artifact")
GZ2 = ("t01_smooth_or_features_a01_smooth_count", "t01_smooth_or_features_a02_features_or_disk_count",
       "t01_smooth_or_features_a03_star_or_artifact_count")
IAU = ["J000000.80+004200.0", "J000001.12-010203.4", "J235959.99+123456.7"]
DR7 = [587722981736120347, 587722981736185883, 588015509806252125]


def gz_decals_table(path, ids=IAU, filler=0):
    """A GZ DECaLS volunteer table: iauname, ra, dec, the smooth-or-featured counts, totals and fractions, then
    ``filler`` more question columns (the real table has about 150)."""
    n = len(ids)
    cols = {"iauname": ids, "ra": np.linspace(0.0, 1.0, n), "dec": np.zeros(n),
            GZD[0]: [10, 2, 0], GZD[1]: [3, 30, 1], GZD[2]: [0, 1, 9],
            "smooth-or-featured_total-votes": [13, 33, 10],
            "smooth-or-featured_smooth_fraction": [10 / 13, 2 / 33, 0.0]}
    cols.update({f"has-spiral-arms_q{i}": np.zeros(n, int) for i in range(filler)})
    Table(cols).write(path, format="ascii.csv", overwrite=True)
    return path


def catalog(ids, **extra):
    return Table({"id_str": ids, "ra": [10.0, 11.0, 12.0][:len(ids)], "dec": [1.0, 2.0, 3.0][:len(ids)], **extra})


def votes_of(t):
    return [list(t[c]) for c in ("votes_smooth", "votes_featured", "votes_artifact")]


def test_gz_decals_iauname_joins_id_str(tmp_path):
    votes = gz_decals_table(tmp_path / "gz_decals_volunteers_5.csv")
    out = join_votes(catalog([IAU[2], "other", IAU[0]]), votes)
    assert votes_of(out) == [[0, -1, 10], [1, -1, 3], [9, -1, 0]]
    assert out.meta["votes_join"]["votes_id"] == "iauname" and out.meta["votes_join"]["catalog_id"] == "id_str"
    assert out.meta["votes_join"]["n_matched"] == 2
    assert not set(GZD) & set(out.colnames)


def test_catalog_column_of_the_same_name_is_used(tmp_path):
    votes = gz_decals_table(tmp_path / "v.csv")
    out = join_votes(catalog(["a", "b", "c"], iauname=[IAU[1], IAU[0], "J1"]), votes)
    assert out.meta["votes_join"]["catalog_id"] == "iauname"
    assert votes_of(out)[0] == [2, 10, -1]


def test_gz2_dr7objid_joins_integer_and_text_ids(tmp_path):
    Table({"dr7objid": np.array(DR7, dtype=np.int64), "ra": [1.0, 2.0, 3.0], "dec": [0.0, 0.0, 0.0],
           GZ2[0]: [40, 5, 1], GZ2[1]: [2, 30, 1], GZ2[2]: [1, 0, 20],
           "t01_smooth_or_features_a01_smooth_weighted_fraction": [0.9, 0.1, 0.0]}).write(tmp_path / "gz2.csv",
                                                                                         format="ascii.csv")
    out = join_votes(catalog([str(DR7[1]), str(DR7[0])]), tmp_path / "gz2.csv")
    assert votes_of(out) == [[5, 40], [30, 2], [0, 1]]
    assert out.meta["votes_join"]["votes_id"] == "dr7objid"
    # the SDSS ids as integers in the catalog's own column
    out = join_votes(catalog(["x", "y"], dr7objid=np.array([DR7[2], DR7[1]], dtype=np.int64)), tmp_path / "gz2.csv")
    assert votes_of(out)[0] == [1, 5]


def test_the_id_column_that_matches_wins(tmp_path):
    Table({"iauname": IAU, "dr8_id": ["100011_1131", "100011_22", "3_4"], GZD[0]: [1, 2, 3], GZD[1]: [4, 5, 6],
           GZD[2]: [0, 0, 0]}).write(tmp_path / "desi.csv", format="ascii.csv")
    out = join_votes(catalog(["100011_22", "3_4"]), tmp_path / "desi.csv")
    assert out.meta["votes_join"]["votes_id"] == "dr8_id" and votes_of(out)[0] == [2, 3]


def test_explicit_votes_id_and_catalog_id(tmp_path):
    Table({"iauname": IAU, "my_name": ["m0", "m1", "m2"], GZD[0]: [1, 2, 3], GZD[1]: [4, 5, 6],
           GZD[2]: [0, 0, 0]}).write(tmp_path / "v.csv", format="ascii.csv")
    out = join_votes(catalog(["m2", "m0"]), tmp_path / "v.csv", votes_id="my_name")
    assert votes_of(out)[0] == [3, 1]
    out = join_votes(catalog(["a", "b"], nick=["m1", "m9"]), tmp_path / "v.csv", votes_id="MY_NAME",
                     catalog_id="nick")
    assert votes_of(out)[0] == [2, -1] and out.meta["votes_join"]["votes_id"] == "my_name"
    with pytest.raises(DatasetError, match="no column 'nope' \\(--votes-id\\)"):
        join_votes(catalog(["m0"]), tmp_path / "v.csv", votes_id="nope")
    with pytest.raises(DatasetError, match="no column 'nope' \\(--catalog-id\\)"):
        join_votes(catalog(["m0"]), tmp_path / "v.csv", catalog_id="nope")


def test_no_id_column_is_a_short_one_line_error(tmp_path):
    cols = {GZD[0]: [1], GZD[1]: [2], GZD[2]: [0], **{f"question-{i:03d}_answer": [0] for i in range(150)}}
    Table(cols).write(tmp_path / "v.csv", format="ascii.csv")
    with pytest.raises(DatasetError) as err:
        join_votes(catalog(["a"]), tmp_path / "v.csv")
    msg = str(err.value)
    assert "\n" not in msg and len(msg) - len(str(tmp_path / "v.csv")) < 400, msg
    assert all(name in msg for name in ID_COLUMNS) and "--votes-id" in msg
    assert GZD[0] in msg and "question-149_answer" not in msg and "153 in all" in msg


def test_no_matching_id_is_an_error(tmp_path):
    votes = gz_decals_table(tmp_path / "v.csv")
    with pytest.raises(DatasetError, match="no catalog object has votes.*'id_str'.*'iauname'"):
        join_votes(catalog(["gz-1", "gz-2"]), votes)


def _pictures(root, ids):
    (root / "pics").mkdir()
    rows = []
    for k, s in enumerate(ids):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / "pics" / f"{k}.png")
        rows.append((s, 10.0 + k, 1.0, f"pics/{k}.png"))
    Table(rows=rows, names=["id_str", "ra", "dec", "file"]).write(root / "cat.csv", format="ascii.csv")
    return root / "cat.csv"


def test_cli_pictures_with_gz_decals_votes_and_votes_id(tmp_path, capsys):
    from labelsky.data.io import open_dataset

    cat = _pictures(tmp_path, IAU)
    votes = gz_decals_table(tmp_path / "gz.csv", filler=150)
    assert main(["import", "pictures", str(cat), "--votes", str(votes), "--out", str(tmp_path / "a")]) == 0
    assert "3 of 3 objects matched on" in capsys.readouterr().out
    assert list(open_dataset(tmp_path / "a").column("votes_featured")) == [3, 30, 1]
    rc = main(["import", "pictures", str(cat), "--votes", str(votes), "--votes-id", "iauname", "--catalog-id",
               "id_str", "--out", str(tmp_path / "b")])
    assert rc == 0
    capsys.readouterr()
    rc = main(["import", "pictures", str(cat), "--votes", str(votes), "--votes-id", "objname",
               "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("labelsky: error: ") and "objname" in err[0], err
    assert len(err[0]) - len(str(votes)) < 400, err


def test_cli_fits_cutouts_with_votes_id_and_catalog_id(tmp_path):
    from astropy.io import fits

    rows = []
    for i, name in enumerate(IAU):
        fits.PrimaryHDU(np.full((3, 16, 16), 0.01 * (i + 1), np.float32)).writeto(tmp_path / f"c{i}.fits")
        rows.append((f"obj{i}", 10.0 + i, 1.0, f"c{i}.fits", name))
    Table(rows=rows, names=("id_str", "ra", "dec", "file", "desig")).write(tmp_path / "cat.csv", format="ascii.csv")
    Table({"name": IAU[::-1], GZD[0]: [1, 2, 3], GZD[1]: [4, 5, 6], GZD[2]: [7, 8, 9]}).write(
        tmp_path / "votes.csv", format="ascii.csv")
    assert main(["import", "fits-cutouts", str(tmp_path / "cat.csv"), "--survey", "decals", "--size", "16",
                 "--votes", str(tmp_path / "votes.csv"), "--votes-id", "name", "--catalog-id", "desig",
                 "--out", str(tmp_path / "ds")]) == 0
    from labelsky.data.io import open_dataset

    ds = open_dataset(tmp_path / "ds")
    assert list(ds.column("votes_smooth")) == [3, 2, 1] and list(ds.column("votes_artifact")) == [9, 8, 7]


def test_csv_ids_and_file_names_stay_text(tmp_path, capsys):
    """``007``, ``0100`` and ``100011_1131`` are ids, not numbers: the catalog keeps them as written and they join
    a GZ DESI ``dr8_id`` vote table that uses the same spelling."""
    from labelsky.data.importers.base import read_table
    from labelsky.data.io import open_dataset

    ids = ["007", "0100", "100011_1131"]
    cat = _pictures(tmp_path, ids)
    t = read_table(cat)
    assert list(t["id_str"]) == ids and list(t["file"]) == ["pics/0.png", "pics/1.png", "pics/2.png"]
    (tmp_path / "desi.csv").write_text("dr8_id,smooth-or-featured_smooth,smooth-or-featured_featured-or-disk,"
                                       "smooth-or-featured_artifact\n100011_1131,1,2,3\n0100,4,5,6\n007,7,8,9\n")
    assert list(read_table(tmp_path / "desi.csv")["dr8_id"]) == ["100011_1131", "0100", "007"]
    assert main(["import", "pictures", str(cat), "--votes", str(tmp_path / "desi.csv"), "--votes-id", "dr8_id",
                 "--out", str(tmp_path / "ds")]) == 0
    assert "3 of 3 objects matched" in capsys.readouterr().out
    ds = open_dataset(tmp_path / "ds")
    assert list(ds.column("id_str")) == ids
    assert list(ds.column("votes_smooth")) == [7, 4, 1] and list(ds.column("votes_artifact")) == [9, 6, 3]


def test_per_campaign_columns_are_summed_over_the_campaigns_that_voted():
    """GZ DESI-style tables keep campaigns apart (``smooth-or-featured-dr5_*``, ``-dr8_*``, ...): each galaxy's
    counts are the sum over the campaigns that showed it; one shown by none has -1."""
    from labelsky.data.importers.votes import read_votes

    nan = np.nan
    t = Table({"dr8_id": ["a", "b", "c", "d"],
               "smooth-or-featured-dr5_smooth": [3, nan, 0, nan],
               "smooth-or-featured-dr5_featured-or-disk": [1, nan, 0, nan],
               "smooth-or-featured-dr5_artifact": [0, nan, 0, nan],
               "smooth-or-featured-dr8_smooth": [10, 2, nan, 0],
               "smooth-or-featured-dr8_featured-or-disk": [5, 30, nan, 0],
               "smooth-or-featured-dr8_artifact": [1, 0, nan, 0],
               "smooth-or-featured-dr8_smooth_fraction": [0.6, 0.06, nan, nan]})
    v = read_votes(t, "gz_desi.parquet")
    assert v["_convention"] == "ortho_dr5+ortho_dr8"
    assert votes_of(v) == [[13, 2, -1, -1], [6, 30, -1, -1], [1, 0, -1, -1]]
    # the cosmic-dawn campaign's third answer is "problem"
    cd = Table({"smooth-or-featured-cd_smooth": [4], "smooth-or-featured-cd_featured-or-disk": [2],
                "smooth-or-featured-cd_problem": [1]})
    assert votes_of(read_votes(cd)) == [[4], [2], [1]]
    # a single-campaign convention wins over per-campaign columns beside it
    t["smooth-or-featured_smooth"], t["smooth-or-featured_featured-or-disk"], t["smooth-or-featured_artifact"] = \
        [1, 1, 1, 1], [2, 2, 2, 2], [0, 0, 0, 0]
    assert read_votes(t)["_convention"] == "gz_decals"
    bad = Table({"smooth-or-featured-dr8_smooth": [1.5], "smooth-or-featured-dr8_featured-or-disk": [1],
                 "smooth-or-featured-dr8_artifact": [0]})
    with pytest.raises(DatasetError, match="row 0: field 'smooth-or-featured-dr8_smooth' = 1.5"):
        read_votes(bad, "bad.csv")
