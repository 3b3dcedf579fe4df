"""The command-line interface: listing, errors with exit code 2, simulate -> show, demo."""

import json

import pytest

from labelsky.cli import main


def test_surveys_lists_builtins(capsys):
    assert main(["surveys"]) == 0
    out = capsys.readouterr().out
    for name in ("sdss", "sdss_stripe82", "des", "decals", "lsst_y1", "lsst_y10"):
        assert f"\n{name} " in out


def test_surveys_yaml_roundtrip(capsys, tmp_path):
    assert main(["surveys", "des"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("name: des", "name: mine"))
    assert main(["surveys", str(path)]) == 0
    assert "name: mine" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "n_objects must be a positive count"),
    (["--n", "-3"], "n_objects must be a positive count"),
    (["--n", "4", "--surveys", "nosuch"], "unknown survey 'nosuch'"),
    (["--n", "4", "--classes", "blob=1"], "unknown class 'blob'"),
])
def test_simulate_bad_input_exit_2(tmp_path, capsys, args, message):
    assert main(["simulate", "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_simulate_show_and_refuse_overwrite(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--n", "6", "--surveys", "decals", "--stamp-size", "24",
            "--classes", "elliptical,spiral", "--workers", "1"]
    assert main(args) == 0
    assert (out / "decals" / "labelsky.json").exists()
    assert main(["show", str(out), "--per-class", "2"]) == 0
    assert (out / "figures" / "mosaic_decals.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_demo_small(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "120", "--epochs", "2", "--pretrain-epochs", "1",
                 "--workers", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["datasets"]) == {"sdss", "des"}
    assert {"HP SDSS", "HP DES", "FO SDSS", "FO DES"} <= set(summary["accuracy"])
    assert len(summary["fo_des_by_round"]) == 2
    cat = pq.read_table(summary["catalog"])
    assert cat.num_rows == summary["datasets"]["des"]["n"] and "p_spiral" in cat.column_names
    for f in summary["figures"]:
        assert (tmp_path / f).exists() or __import__("pathlib").Path(f).exists(), f
    site = __import__("pathlib").Path(summary["site"])  # the demo ends with the catalog's browsable site
    assert site.name == "index.html" and "p_spiral" not in site.read_text() and "class-spiral" in site.read_text()


def test_simulate_a_papers_sample_reports_what_it_lets_a_method_see(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--sample", "deepastrouda", "--field-of-view", "64", "--out", str(out), "--n", "8",
                 "--stamp-size", "16", "--classes", "elliptical,spiral", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "resolved: half-light radius > PSF FWHM" in printed and "sdss, r band" in printed
    config = json.loads((out / "simulation.json").read_text())["config"]
    assert config["sample"] == "deepastrouda" and config["field_of_view"] == 64  # explicit option over the sample's
    assert config["mag_limits"] == {"sdss": 17.0, "decals": 17.77} and config["overlap"] == 0.0
    for survey in ("sdss", "decals"):
        report = json.loads((out / f"sample_{survey}.json").read_text())
        assert report["source"] == "truth" and set(report["classes"]) <= {"elliptical", "spiral"}
        assert (out / f"sample_{survey}.png").stat().st_size > 1000
    assert main(["validate", str(out / "sdss"), "--sample-figure", str(tmp_path / "v.png")]) == 0
    assert "half-light arcsec" in capsys.readouterr().out and (tmp_path / "v.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--sample", "owg"], "clusters sample"),
    (["--sample", "gz9"], "unknown sample 'gz9'"),
    (["--mag-limit", "sdss:17"], "expected SURVEY=MAGNITUDE"),
    (["--mag-limit", "decals=17.0"], "not simulated"),
    (["--kind", "clusters", "--mag-range", "14", "17"], "--mag-range is for --kind galaxies"),
    (["--like", "somewhere", "--sample", "etvae"], "it does not take --sample"),
])
def test_sample_options_refused_in_one_line(tmp_path, capsys, args, message):
    assert main(["simulate", "--out", str(tmp_path / "o"), "--n", "4", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
