"""The Galaxy Zoo decision trees: structure, unconditional probabilities, the real tables' columns, the simulator."""

import csv

import numpy as np
import pytest
from astropy.table import Table

from labelsky.data.importers.base import read_table
from labelsky.data.importers.votes import join_votes, read_tree_votes
from labelsky.data.io import DatasetError
from labelsky.data.vote_trees import DECALS_DR5, GZ2, SCHEMAS, get_tree, schema_columns, tree_of_columns


def test_the_published_trees():
    assert len(GZ2.questions) == 11 and len(GZ2.answers) == 37
    assert len(DECALS_DR5.questions) == 10 and len(DECALS_DR5.answers) == 34
    assert get_tree("desi") is DECALS_DR5 and get_tree("gz2") is GZ2
    # the dependencies of the published trees
    assert DECALS_DR5.question("bar").parents == (("disk-edge-on", "no"),)
    assert DECALS_DR5.question("spiral-winding").parents == (("has-spiral-arms", "yes"),)
    assert GZ2.question("t08_odd_feature").parents == (("t06_odd", "a14_yes"),)
    assert GZ2.question("t09_bulge_shape").parents == (("t02_edgeon", "a04_yes"),)
    assert schema_columns("desi")[3] == "disk-edge-on-dr8_yes"
    assert schema_columns("gz2")[-1] == "t11_arms_number_a37_cant_tell_count"
    assert tree_of_columns(["x", *DECALS_DR5.columns()]) is DECALS_DR5 and tree_of_columns(GZ2.names()) is GZ2
    assert tree_of_columns(["p_smooth"]) is None
    with pytest.raises(KeyError, match="gz2"):
        get_tree("gz3")


def test_unconditional_probabilities_multiply_along_the_tree():
    f = np.zeros((1, 34))
    vals = {("smooth-or-featured", "smooth"): 0.3, ("smooth-or-featured", "featured-or-disk"): 0.6,
            ("smooth-or-featured", "artifact"): 0.1, ("disk-edge-on", "yes"): 0.25, ("disk-edge-on", "no"): 0.75,
            ("bar", "strong"): 0.2, ("bar", "weak"): 0.3, ("bar", "no"): 0.5,
            ("has-spiral-arms", "yes"): 0.8, ("has-spiral-arms", "no"): 0.2,
            ("spiral-winding", "tight"): 0.5, ("spiral-winding", "medium"): 0.5, ("spiral-winding", "loose"): 0.0,
            ("merging", "merger"): 0.1, ("merging", "none"): 0.9}
    for k, qa in enumerate(DECALS_DR5.answers):
        f[0, k] = vals.get(qa, 0.0)
    u = dict(zip(DECALS_DR5.answers, DECALS_DR5.unconditional(f)[0]))
    assert u[("bar", "strong")] == pytest.approx(0.6 * 0.75 * 0.2)
    assert u[("spiral-winding", "tight")] == pytest.approx(0.6 * 0.75 * 0.8 * 0.5)
    assert u[("merging", "merger")] == pytest.approx((0.3 + 0.6) * 0.1)  # asked after smooth and featured
    assert u[("smooth-or-featured", "artifact")] == pytest.approx(0.1)


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("schema, name", [("decals-dr5", "gz_decals_volunteers_5.csv"), ("gz2", "gz2_hart16.csv")])
def test_real_galaxy_zoo_tables_import_with_every_question(galaxy_zoo_tables, schema, name):
    path = galaxy_zoo_tables / name
    rows = _csv_rows(path)
    votes = read_tree_votes(read_table(path), schema, str(path))
    tree = get_tree(schema)
    for src, dst in zip(schema_columns(schema), tree.columns()):
        np.testing.assert_array_equal(votes[dst], [int(float(r[src])) for r in rows], err_msg=src)
    counts = np.stack([votes[c] for c in tree.columns()], 1)
    index = {qa: k for k, qa in enumerate(tree.answers)}
    for q, s in zip(tree.questions, tree.slices()):  # volunteers flow down the tree: a question never has more
        if q.parents:                                # votes than its parent answers (a few leave early)
            reach = sum(counts[:, index[p]] for p in q.parents)
            assert (counts[:, s].sum(1) <= reach).all(), q.name
    assert tree.asked(counts).any(0).sum() >= 9  # the few rows reach (nearly) every question


def test_a_fraction_table_is_refused_naming_what_is_missing(galaxy_zoo_tables):
    path = galaxy_zoo_tables / "training_solutions_rev1.csv"
    with pytest.raises(DatasetError, match=r"37 of the 37 count columns .*fractions, not counts"):
        read_tree_votes(read_table(path), "gz2", str(path))


def test_join_brings_every_answer_and_minus_one_where_unmatched(galaxy_zoo_tables):
    path = galaxy_zoo_tables / "gz_decals_volunteers_5.csv"
    rows = _csv_rows(path)
    cat = Table({"id_str": [rows[2]["iauname"], "not-in-table"], "ra": [1.0, 2.0], "dec": [0.0, 0.0]})
    out = join_votes(cat, path, schema="decals-dr5")
    assert out.meta["votes_join"]["schema"] == "decals-dr5"
    assert int(out["votes_bar_weak"][0]) == int(rows[2]["bar_weak"]) and int(out["votes_bar_weak"][1]) == -1
    assert int(out["votes_smooth"][0]) == int(rows[2]["smooth-or-featured_smooth"])
    assert set(DECALS_DR5.columns()) <= set(out.colnames)
    with pytest.raises(DatasetError, match="unknown vote schema"):
        join_votes(cat, path, schema="gz9")


def test_simulated_votes_cover_the_tree_from_each_galaxys_truth():
    from labelsky.data.simulate.votes import sample_tree_votes, sample_votes

    rng = np.random.default_rng(0)
    truth = {"barred_spiral": {"true_q": 0.8, "true_bulge_frac": 0.1, "true_n_arms": 2.0, "true_pitch_deg": 12.0,
                               "true_bar_frac": 0.2},
             "spiral": {"true_q": 0.8, "true_bulge_frac": 0.1, "true_n_arms": 4.0, "true_pitch_deg": 33.0},
             "edge_on": {"true_q": 0.1, "true_bulge_frac": 0.0}}
    index = {qa: k for k, qa in enumerate(DECALS_DR5.answers)}
    tot = {}
    for vis in (1.0, 0.05):
        for cls, t in truth.items():
            c = np.sum([sample_tree_votes(cls, t, vis, sample_votes(cls, vis, rng), rng) for _ in range(200)], 0)
            tot[cls, vis] = {qa: c[k] for qa, k in index.items()}
            # every question gets exactly the votes of its parent answers
            for q, s in zip(DECALS_DR5.questions[1:], DECALS_DR5.slices()[1:]):
                assert c[s].sum() == sum(c[index[p]] for p in q.parents), q.name

    def frac(cls, vis, q, a):
        d = tot[cls, vis]
        return d[q, a] / sum(v for (qq, _), v in d.items() if qq == q)

    assert frac("barred_spiral", 1.0, "bar", "strong") > 0.5 > frac("spiral", 1.0, "bar", "strong")
    assert frac("spiral", 1.0, "spiral-arm-count", "4") > 0.5 > frac("barred_spiral", 1.0, "spiral-arm-count", "4")
    assert frac("barred_spiral", 1.0, "spiral-winding", "tight") > 0.5 > frac("spiral", 1.0, "spiral-winding", "tight")
    assert frac("edge_on", 1.0, "disk-edge-on", "yes") > 0.8 and frac("edge_on", 1.0, "edge-on-bulge", "none") > 0.5
    # unresolved: fewer featured votes, so fewer volunteers below, and "can't tell" the arms
    assert tot["spiral", 0.05]["disk-edge-on", "no"] < 0.5 * tot["spiral", 1.0]["disk-edge-on", "no"]
    assert frac("spiral", 0.05, "spiral-arm-count", "cant-tell") > 2 * frac("spiral", 1.0, "spiral-arm-count",
                                                                             "cant-tell")


def test_every_schema_names_a_tree():
    assert {SCHEMAS[s][0] for s in SCHEMAS} == {"gz2", "decals-dr5"}


def test_import_pictures_with_the_real_decals_votes_keeps_every_question(tmp_path, galaxy_zoo_tables):
    from PIL import Image

    from labelsky.cli import main
    from labelsky.data.io import open_dataset

    votes = galaxy_zoo_tables / "gz_decals_volunteers_5.csv"
    rows = _csv_rows(votes)
    (tmp_path / "pics").mkdir()
    with open(tmp_path / "cat.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id_str", "ra", "dec", "file"])
        for i, r in enumerate(rows):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "pics" / f"{i}.png")
            w.writerow([r["iauname"], r["ra"], r["dec"], f"pics/{i}.png"])
    assert main(["import", "pictures", str(tmp_path / "cat.csv"), "--out", str(tmp_path / "ds"), "--votes",
                 str(votes), "--schema", "decals-dr5"]) == 0
    ds = open_dataset(tmp_path / "ds")
    by_id = {r["iauname"]: r for r in rows}
    for col, src in zip(DECALS_DR5.columns(), schema_columns("decals-dr5")):
        assert [by_id[i][src] for i in ds.column("id_str")] == [str(v) for v in ds.column(col)], col
    # without --schema only the first question is kept, as before
    assert main(["import", "pictures", str(tmp_path / "cat.csv"), "--out", str(tmp_path / "ds1"), "--votes",
                 str(votes)]) == 0
    assert "votes_bar_weak" not in open_dataset(tmp_path / "ds1").catalog.column_names
    assert main(["import", "galaxy10", str(tmp_path / "x.h5"), "--out", str(tmp_path / "g"), "--schema", "gz2"]) == 2
