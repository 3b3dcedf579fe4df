"""The defects of the output and run lifecycles, each reproduced on the command line.

- ``--overwrite`` never deletes an input, the current folder or a folder labelsky did not make;
- a run folder refuses to resume with other settings or other data, for every training command;
- a crafted checkpoint does not run code, even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``;
- a corrupt or foreign checkpoint is one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from conftest import one_line_error
from labelsky.cli import main


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A tiny simulated decals dataset (elliptical / spiral) and a trained transfer run on it."""
    from labelsky.data.simulate import simulate_galaxies

    root = tmp_path_factory.mktemp("life")
    ds = simulate_galaxies(root / "sim", n_objects=24, surveys=["decals"], stamp_size=16, workers=1, progress=False,
                           classes={"elliptical": 1, "spiral": 1})["decals"]
    run = root / "run"
    assert main(["train", "--data", str(ds.path), "--out", str(run), "--backbone", "resnet10t", "--epochs", "1",
                 "--batch-size", "8"]) == 0
    return ds, run


def test_import_overwrite_into_its_own_input_folder_is_refused_and_deletes_nothing(tmp_path, capsys, sim):
    from labelsky.data.importers.fits import export_fits_cutouts

    ds, _ = sim
    cut = tmp_path / "cut"
    cat = export_fits_cutouts(ds, cut)
    before = _files(cut)
    assert len(before) == len(ds) + 1
    rc = main(["import", "fits-cutouts", str(cat), "--survey", "decals", "--size", "16", "--out", str(cut),
               "--overwrite"])
    assert rc == 2
    one_line_error(capsys, "input")
    assert _files(cut) == before  # every FITS file and the catalog are still there


def test_simulate_overwrite_of_the_current_folder_is_refused(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert main(["simulate", "--out", ".", "--n", "4", "--surveys", "decals", "--stamp-size", "16", "--workers", "1",
                 "--overwrite"]) == 2
    one_line_error(capsys, "not made by labelsky")
    assert (work / "notes.txt").read_text() == "mine"
    # even when labelsky made the current folder, --overwrite never empties it
    from labelsky.outputs import mark_output

    mark_output(work, "simulation")
    assert main(["simulate", "--out", ".", "--n", "4", "--surveys", "decals", "--stamp-size", "16", "--workers", "1",
                 "--overwrite"]) == 2
    one_line_error(capsys, "current folder")
    assert (work / "notes.txt").read_text() == "mine"


def test_overwrite_of_a_foreign_folder_is_refused_for_every_writing_command(tmp_path, capsys, sim):
    ds, run = sim
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    commands = [
        ["simulate", "--out", str(foreign), "--n", "4", "--surveys", "decals", "--workers", "1"],
        ["crossmatch", str(ds.path), str(ds.path), "--out", str(foreign)],
        ["train", "--data", str(ds.path), "--out", str(foreign), "--backbone", "resnet10t", "--epochs", "1"],
        ["pretrain", "--data", str(ds.path), "--out", str(foreign), "--backbone", "resnet10t", "--epochs", "1"],
        ["semisup", "--data", str(ds.path), "--out", str(foreign), "--epochs", "1"],
        ["adapt", "--source", str(ds.path), "--target", str(ds.path), "--out", str(foreign), "--epochs", "1",
         "--backbone", "resnet10t"],
    ]
    for cmd in commands:
        for extra in ([], ["--overwrite"]):
            assert main(cmd + extra) == 2, cmd + extra
            capsys.readouterr()
            assert _files(foreign) == ["thesis.tex"], cmd + extra


def test_train_refuses_to_resume_with_other_settings_or_other_data(tmp_path, capsys, sim):
    from labelsky.data.simulate import simulate_galaxies

    ds, run = sim
    ckpt = (run / "checkpoints" / "last.ckpt").read_bytes()
    base = ["train", "--data", str(ds.path), "--out", str(run), "--backbone", "resnet10t", "--epochs", "1",
            "--batch-size", "8"]
    assert main(base + ["--lr", "0.01"]) == 2
    one_line_error(capsys, "lr: 0.001 -> 0.01", "--overwrite")
    other = simulate_galaxies(tmp_path / "other", n_objects=20, surveys=["decals"], stamp_size=16, workers=1,
                              progress=False, classes={"elliptical": 1, "spiral": 1}, seed=5)["decals"]
    base_other = [a if a != str(ds.path) else str(other.path) for a in base]
    assert main(base_other) == 2
    one_line_error(capsys, "data")
    assert json.loads((run / "config.json").read_text())["data"]["train"][0]["dataset"] == str(ds.path.resolve())
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == ckpt


def test_a_crafted_checkpoint_does_not_run_code_even_when_torch_is_told_to_unpickle(tmp_path, capsys, monkeypatch,
                                                                                   sim):
    import shutil

    ds, run = sim
    victim = tmp_path / "run"
    shutil.copytree(run, victim)
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    with open(victim / "checkpoints" / "last.ckpt", "wb") as fh:
        pickle.dump({"state_dict": {}, "hyper_parameters": {}, "x": Evil()}, fh)
    shutil.copy(victim / "checkpoints" / "last.ckpt", victim / "checkpoints" / "best.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    # resuming (Lightning's checkpoint), evaluating and cataloguing all open it safely
    assert main(["train", "--data", str(ds.path), "--out", str(victim), "--backbone", "resnet10t", "--epochs", "1",
                 "--batch-size", "8"]) == 2
    one_line_error(capsys, "last.ckpt", "cannot be read safely")
    assert main(["evaluate", "--run", str(victim), "--data", str(ds.path)]) == 2
    one_line_error(capsys, "best.ckpt")
    assert main(["catalog", "--run", str(victim), "--data", str(ds.path), "--out", str(tmp_path / "c.parquet")]) == 2
    one_line_error(capsys, "best.ckpt")
    assert not flag.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated", "foreign"])
def test_corrupt_or_foreign_checkpoint_is_one_line_and_exit_2(tmp_path, capsys, sim, content):
    import shutil

    ds, run = sim
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    best = bad / "checkpoints" / "best.ckpt"
    if content == "truncated":
        data = best.read_bytes()
        best.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        torch.save({"weights": torch.zeros(3)}, best)
    else:
        best.write_bytes(content)
    assert main(["evaluate", "--run", str(bad), "--data", str(ds.path)]) == 2
    one_line_error(capsys, "best.ckpt")


def test_every_training_command_refuses_other_settings(tmp_path, capsys, sim):
    ds, _ = sim
    cases = {
        "pretrain": ["pretrain", "--data", str(ds.path), "--backbone", "resnet10t", "--feature-dim", "8",
                     "--epochs", "1", "--batch-size", "8"],
        "semisup": ["semisup", "--data", str(ds.path), "--epochs", "1", "--latent-dim", "4", "--batch-size", "8",
                    "--regime", "supervised"],
        "adapt": ["adapt", "--source", str(ds.path), "--target", str(ds.path), "--backbone", "resnet10t",
                  "--epochs", "1", "--batch-size", "8"],
    }
    for name, cmd in cases.items():
        out = tmp_path / name
        assert main(cmd + ["--out", str(out)]) == 0, name
        capsys.readouterr()
        assert main(cmd + ["--out", str(out), "--lr", "0.5"]) == 2, name
        one_line_error(capsys, "lr:", "--overwrite")
        assert json.loads((out / "config.json").read_text())["config"]["lr"] != 0.5
        assert main(cmd + ["--out", str(out), "--lr", "0.5", "--overwrite"]) == 0, name
        assert json.loads((out / "config.json").read_text())["config"]["lr"] == 0.5
        capsys.readouterr()


def test_evaluate_on_a_read_only_run_prints_its_metrics(capsys, monkeypatch, sim):
    import labelsky.evaluate.report

    ds, run = sim

    def read_only(path, *a, **k):  # what a read-only folder answers (root would write anyway, so it is simulated)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(labelsky.evaluate.report, "atomic_write_json", read_only)
    assert main(["evaluate", "--run", str(run), "--data", str(ds.path), "--split", "all"]) == 0
    cap = capsys.readouterr()
    assert "accuracy=" in cap.out and "cannot write" in cap.err and "Permission denied" in cap.err


def _sdss_dataset(path):
    """8 objects in SDSS u and i only (16 x 16): bands a g r z model does not have."""
    from labelsky.data.importers.base import survey_with_bands
    from labelsky.data.io import DatasetWriter

    n = 8
    w = DatasetWriter(path, survey_with_bands("sdss", ["u", "i"]), (2, 16, 16), classes=["elliptical", "spiral"],
                      n_shards=1, config={})
    w.write_shard(0, np.random.default_rng(0).normal(size=(n, 2, 16, 16)).astype(np.float32), {
        "id_str": [f"s{i}" for i in range(n)], "ra": np.linspace(1, 2, n), "dec": np.zeros(n), "survey": ["sdss"] * n,
        "split": ["test"] * n, "label": (np.arange(n) % 2).astype(np.int16),
        "label_name": [["elliptical", "spiral"][i % 2] for i in range(n)], "richness": np.full(n, np.nan, np.float32),
        **{v: np.full(n, -1, np.int32) for v in ("votes_smooth", "votes_featured", "votes_artifact")}})
    return w.finalize()


def test_runs_refuse_datasets_without_their_bands_by_name(tmp_path, capsys, sim):
    ds, run = sim
    other = _sdss_dataset(tmp_path / "sdss")
    uda = tmp_path / "uda"
    assert main(["adapt", "--source", str(ds.path), "--target", str(ds.path), "--out", str(uda), "--backbone",
                 "resnet10t", "--epochs", "1", "--batch-size", "8"]) == 0
    capsys.readouterr()
    for r in (run, uda):
        assert main(["catalog", "--run", str(r), "--data", str(other.path), "--out", str(tmp_path / "c.parquet")]) == 2
        one_line_error(capsys, "band")
        assert main(["evaluate", "--run", str(r), "--data", str(other.path)]) == 2
        one_line_error(capsys)


def test_fewer_epochs_on_a_finished_run_and_bad_trainer_settings(tmp_path, capsys, sim):
    ds, _ = sim
    base = ["train", "--data", str(ds.path), "--out", str(tmp_path / "r"), "--backbone", "resnet10t",
            "--batch-size", "8"]
    assert main(base + ["--epochs", "2"]) == 0
    capsys.readouterr()
    assert main(base + ["--epochs", "1"]) == 0  # already trained further: nothing to do, no traceback
    assert "already trained 2 epoch(s)" in capsys.readouterr().err
    assert main(base + ["--epochs", "1", "--strategy", "dpp", "--out", str(tmp_path / "r2")]) == 2
    one_line_error(capsys, "strategy")
    assert main(base + ["--workers", "-1"]) == 2
    one_line_error(capsys, "--workers")


def test_partitioned_catalog_overwrite_never_replaces_the_current_folder(tmp_path, capsys, monkeypatch, sim):
    ds, run = sim
    out = tmp_path / "cat"
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    monkeypatch.chdir(out)
    capsys.readouterr()
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", ".", "--overwrite"]) == 2
    one_line_error(capsys, "current folder")
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(tmp_path / "x.csv")]) == 2
    one_line_error(capsys, ".csv")


@pytest.mark.parametrize("name", ["train"])  # adapt and semisup: tests/methods/test_exact_resume.py (in-process)
def test_a_killed_training_resumes_to_the_same_number_of_steps(tmp_path, sim, name):
    """kill -9 after the first epoch's checkpoint, rerun the same command: as many optimisation steps as a run that
    was never interrupted (no epoch repeated or skipped), and the same weights."""
    import signal
    import subprocess
    import sys
    import time

    ds, _ = sim
    args = {"train": ["train", "--data", str(ds.path), "--backbone", "resnet10t", "--batch-size", "4"],
            "adapt": ["adapt", "--source", str(ds.path), "--target", str(ds.path), "--backbone", "resnet10t",
                      "--batch-size", "4"],
            "semisup": ["semisup", "--data", str(ds.path), "--latent-dim", "4", "--batch-size", "4",
                        "--regime", "semi"]}[name] + ["--epochs", "2", "--device", "cpu"]

    def steps(run):
        return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]

    base = [sys.executable, "-m", "labelsky", *args]
    subprocess.run(base + ["--out", str(tmp_path / "full")], check=True, capture_output=True, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(base + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (killed / "checkpoints" / "last.ckpt").exists() and proc.poll() is None and time.time() - t0 < 240:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = steps(killed)
    assert 0 < first < steps(tmp_path / "full")  # it really was killed part-way
    subprocess.run(base + ["--out", str(killed)], check=True, capture_output=True, timeout=300)
    assert steps(killed) == steps(tmp_path / "full")
    weights = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
               for r in (tmp_path / "full", killed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_model_of_flux_images_warns_on_pictures_and_other_sizes(tmp_path, capsys, sim):
    from labelsky.data.importers.base import survey_with_bands
    from labelsky.data.io import DatasetWriter

    ds, run = sim
    n = 8
    w = DatasetWriter(tmp_path / "pics", survey_with_bands("decals", ["g", "r", "z"]), (3, 24, 24),
                      classes=ds.classes, n_shards=1, config={}, extra_meta={"flux_unit": "display"})
    w.write_shard(0, np.random.default_rng(0).uniform(size=(n, 3, 24, 24)).astype(np.float32), {
        "id_str": [f"p{i}" for i in range(n)], "ra": np.linspace(1, 2, n), "dec": np.zeros(n),
        "survey": ["decals"] * n, "split": ["test"] * n, "label": (np.arange(n) % 2).astype(np.int16),
        "label_name": [ds.classes[i % 2] for i in range(n)], "richness": np.full(n, np.nan, np.float32),
        **{v: np.full(n, -1, np.int32) for v in ("votes_smooth", "votes_featured", "votes_artifact")}})
    pics = w.finalize()
    capsys.readouterr()
    assert main(["catalog", "--run", str(run), "--data", str(pics.path), "--out", str(tmp_path / "c.parquet")]) == 0
    err = capsys.readouterr().err
    assert "display images" in err and "24 x 24" in err
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(tmp_path / "d.parquet")]) == 0
    assert "warning" not in capsys.readouterr().err  # its own kind of data: no warning
