"""Typical user mistakes end in one ``labelsky: error: ...`` line and exit status 2, never in a traceback.

Every case runs ``labelsky.cli.main`` in-process on tiny inputs (the 12-object
``tiny_dataset`` and files made here); each fails before any simulation,
training or import work starts. The message must name what is wrong (the
file, field, band or option).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import CLASSES, SHAPE, make_columns, make_images
from labelsky.cli import main
from labelsky.data.io import DatasetWriter
from labelsky.data.surveys import get_survey


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_dataset):
    """Paths of the broken inputs, by name (everything under one module-scoped folder)."""
    root = tmp_path_factory.mktemp("user_errors")
    ds = tiny_dataset[0]
    paths = {"root": root, "ds": ds}

    survey = get_survey("des").to_dict()
    for name, change in {
        "bad_filter": lambda d: d.update(name="mydes", filters=[*d["filters"][:2], "decam2014-q", *d["filters"][3:]]),
        "wrong_type": lambda d: d.update(name="mydes2", pixel_scale="fine"),
        "missing_field": lambda d: (d.update(name="mydes3"), d.pop("sky_mag")),
    }.items():
        d = json.loads(json.dumps(survey))
        change(d)
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(d, sort_keys=False))

    def broken_copy(name, edit):
        dst = root / name
        shutil.copytree(ds, dst)
        edit(dst)
        paths[name] = dst

    def truncate(dst):
        part = dst / "catalog" / "part-00000.parquet"
        part.write_bytes(part.read_bytes()[:100])

    def edit_meta(fn):
        def edit(dst):
            meta = json.loads((dst / "labelsky.json").read_text())
            (dst / "labelsky.json").write_text(json.dumps(fn(meta)))
        return edit

    broken_copy("truncated_catalog", truncate)
    broken_copy("meta_list", edit_meta(lambda m: [m]))
    broken_copy("meta_no_bands", edit_meta(lambda m: {k: v for k, v in m.items() if k != "bands"}))
    broken_copy("meta_wrong_shape", edit_meta(lambda m: {**m, "image_shape": [3, 4, 4]}))

    voted = root / "voted"  # the tiny dataset with Galaxy Zoo votes (for semisup)
    w = DatasetWriter(voted, "decals", SHAPE, classes=CLASSES, n_shards=1, config={"seed": 1})
    n = 12
    w.write_shard(0, make_images(n), make_columns(n, votes_smooth=np.full(n, 5, np.int32),
                                                  votes_featured=np.full(n, 3, np.int32),
                                                  votes_artifact=np.full(n, 1, np.int32)))
    w.finalize()
    paths["voted"] = voted

    sim = root / "broken_sim"
    sim.mkdir()
    (sim / "simulation.json").write_text("{not json")
    paths["broken_sim"] = sim

    no_file = root / "no_file.csv"
    no_file.write_text("id_str,ra,dec,label_name\na1,10.0,5.0,smooth\n")
    pictures = root / "pictures.csv"
    pictures.write_text("id_str,ra,dec,file,label_name\na1,10.0,5.0,a1.png,smooth\na2,11.0,5.0,a2.png,featured\n")
    votes = root / "votes.csv"
    votes.write_text("id_str,votes_smooth,votes_featured,votes_artifact\na1,3,2,0\na2,many,1,0\n")
    paths.update(no_file=no_file, pictures=pictures, votes=votes)
    return paths


# (case id, argv with {name} placeholders for the paths of ``inputs``, what the message must name)
CASES = [
    ("surveys_unknown_filter", ["surveys", "{bad_filter}"], ["bad_filter.yaml", "decam2014-q", "filters"]),
    ("surveys_wrong_type", ["surveys", "{wrong_type}"], ["wrong_type.yaml", "pixel_scale", "fine"]),
    ("surveys_missing_field", ["surveys", "{missing_field}"], ["missing_field.yaml", "sky_mag"]),
    ("surveys_unknown_name", ["surveys", "hubble"], ["hubble"]),
    ("simulate_unknown_filter", ["simulate", "--surveys", "{bad_filter}", "--n", "4", "--workers", "1",
                                 "--out", "{root}/sim_bad_filter"], ["bad_filter.yaml", "decam2014-q"]),
    ("simulate_wrong_type", ["simulate", "--surveys", "{wrong_type}", "--n", "4", "--workers", "1",
                             "--out", "{root}/sim_wrong_type"], ["wrong_type.yaml", "pixel_scale"]),
    ("simulate_n0", ["simulate", "--surveys", "decals", "--n", "0", "--out", "{root}/sim_n0"], ["n_objects"]),
    ("simulate_negative_stamp", ["simulate", "--surveys", "decals", "--n", "4", "--stamp-size", "-5",
                                 "--out", "{root}/sim_stamp"], ["stamp_size", "-5"]),
    ("show_missing_dataset", ["show", "{root}/nowhere"], ["nowhere"]),
    ("show_not_a_dataset", ["show", "{no_file}"], ["no_file.csv", "labelsky.json"]),
    ("show_truncated_catalog", ["show", "{truncated_catalog}", "--out", "{root}/fig1"],
     ["truncated_catalog", "part-00000.parquet"]),
    ("show_metadata_not_object", ["show", "{meta_list}", "--out", "{root}/fig2"], ["meta_list", "labelsky.json"]),
    ("show_metadata_missing_field", ["show", "{meta_no_bands}", "--out", "{root}/fig3"],
     ["meta_no_bands", "labelsky.json", "'bands'"]),
    ("show_shard_wrong_shape", ["show", "{meta_wrong_shape}", "--out", "{root}/fig4"],
     ["meta_wrong_shape", "images/shard-0000", "shape"]),
    ("show_corrupt_simulation", ["show", "{broken_sim}"], ["simulation.json"]),
    ("show_per_class_0", ["show", "{ds}", "--per-class", "0", "--out", "{root}/fig5"], ["--per-class"]),
    ("show_dpi_0", ["show", "{ds}", "--dpi", "0", "--out", "{root}/fig6"], ["--dpi"]),
    ("import_pictures_no_file_column", ["import", "pictures", "{no_file}", "--out", "{root}/imp1"],
     ["no_file.csv", "'file'"]),
    ("import_votes_not_numbers", ["import", "pictures", "{pictures}", "--votes", "{votes}", "--out", "{root}/imp2"],
     ["votes.csv", "votes_smooth", "row 1", "many"]),
    ("import_shard_size_0", ["import", "pictures", "{pictures}", "--shard-size", "0", "--out", "{root}/imp3"],
     ["--shard-size"]),
    ("import_max_masked_negative", ["import", "pictures", "{pictures}", "--max-masked", "-1",
                                    "--out", "{root}/imp4"], ["--max-masked"]),
    ("import_unknown_band", ["import", "pictures", "{pictures}", "--bands", "g", "r", "q", "--out", "{root}/imp5"],
     ["'q'"]),
    ("import_survey_unknown_filter", ["import", "pictures", "{pictures}", "--survey", "{bad_filter}",
                                      "--bands", "g", "r", "z", "--out", "{root}/imp6"], ["decam2014-q"]),
    ("import_fits_negative_pixel_scale", ["import", "fits-cutouts", "{pictures}", "--pixel-scale", "-1",
                                          "--out", "{root}/imp7"], ["--pixel-scale"]),
    ("import_fits_negative_size", ["import", "fits-cutouts", "{pictures}", "--size", "-3", "--out", "{root}/imp8"],
     ["--size"]),
    ("crossmatch_with_itself", ["crossmatch", "{ds}", "{ds}", "--out", "{root}/xm1"], ["tiny", "decals"]),
    ("crossmatch_missing_dataset", ["crossmatch", "{ds}", "{root}/nowhere", "--out", "{root}/xm2"], ["nowhere"]),
    ("richness_on_galaxies", ["richness", "--data", "{ds}", "--out", "{root}/rich"], ["tiny", "cluster_id"]),
    ("semisup_without_votes", ["semisup", "--data", "{ds}", "--out", "{root}/semi"], ["tiny", "votes"]),
    ("semisup_image_size_not_multiple_of_8", ["semisup", "--data", "{voted}", "--out", "{root}/semi2", "--image-size",
                                              "12", "--epochs", "1", "--device", "cpu"], ["--image-size", "12"]),
    ("semisup_latent_dim_0", ["semisup", "--data", "{voted}", "--out", "{root}/semi3", "--latent-dim", "0",
                              "--epochs", "1", "--device", "cpu"], ["--latent-dim"]),
    ("semisup_unknown_band", ["semisup", "--data", "{voted}", "--out", "{root}/semi4", "--bands", "g", "q",
                              "--epochs", "1", "--device", "cpu"], ["'q'", "--bands"]),
    ("semisup_selection_without_labels", ["semisup", "--data", "{voted}", "--out", "{root}/semi5", "--selection",
                                          "split", "--val-fraction", "0.3"], ["--selection", "--val-fraction",
                                                                             "--labels"]),
    ("semisup_render_unknown_viewer", ["semisup", "--data", "{voted}", "--out", "{root}/semi6", "--render",
                                       "skyserver"], ["--render", "skyserver", "legacysurvey"]),
    ("pretrain_feature_dim_0", ["pretrain", "--data", "{ds}", "--out", "{root}/pre1", "--feature-dim", "0",
                                "--epochs", "1", "--device", "cpu"], ["--feature-dim"]),
    ("pretrain_negative_image_size", ["pretrain", "--data", "{ds}", "--out", "{root}/pre2", "--image-size", "-4",
                                      "--epochs", "1", "--device", "cpu"], ["--image-size", "-4"]),
    ("adapt_unknown_band", ["adapt", "--source", "{ds}", "--target", "{ds}", "--out", "{root}/uda2", "--bands", "q",
                            "--backbone", "resnet18", "--epochs", "1", "--device", "cpu"], ["'q'", "--bands"]),
    ("catalog_missing_dataset", ["catalog", "--run", "{root}/norun", "--data", "{root}/nowhere",
                                 "--out", "{root}/cat.parquet"], ["nowhere"]),
    ("adapt_missing_target", ["adapt", "--source", "{ds}", "--target", "{root}/nowhere", "--out", "{root}/uda"],
     ["nowhere"]),
]


@pytest.mark.parametrize("argv, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line(argv, names, inputs, capsys):
    args = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in argv]
    rc = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("labelsky: error: ")
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
