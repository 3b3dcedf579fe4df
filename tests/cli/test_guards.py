"""Guards against mixing, escaping and exhausting: one run folder trained by one command at a time, survey names
that stay folder names, pixel limits read from FITS headers, pipes never opened, flux and pictures never mixed
silently, checkpoints written atomically (and a damaged one resumed from the last good state), evaluate
--reference on any run, cutout sizes and replaced cutouts in imports, swapped shards, cluster's refusals, and plain
one-line messages (markers without a kind, locks, a full disk, weight files holding code)."""

from __future__ import annotations

import json
import os
import socket
import threading
import warnings

import numpy as np
import pytest
import torch
import yaml
from tests.methods.test_registry import write_dataset

from conftest import one_line_error
from labelsky.cli import main
from labelsky.data.io import DatasetWriter, open_dataset

TRAIN = ["--backbone", "resnet10t", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("guards") / "d")


def _pictures(path, n=24):
    """An 8-bit picture dataset of the same classes (what an import of JPEG cutouts gives)."""
    rng = np.random.default_rng(3)
    src = write_dataset(path.parent / "src-of-pictures", n=n)
    w = DatasetWriter(path, "decals", (3, 16, 16), classes=src.classes, n_shards=1, config={"seed": 3},
                      extra_meta={"flux_unit": "display"})
    cols = {c: src.column(c) for c in src.catalog.column_names if c not in ("shard", "row")}
    cols["id_str"] = [f"p-{i}" for i in range(n)]
    w.write_shard(0, rng.uniform(0, 1, size=(n, 3, 16, 16)).astype(np.float32), cols)
    w.finalize()
    return open_dataset(path)


# --------------------------------------------------------------------------------------------------- run locks
def test_a_run_folder_is_trained_by_one_command_at_a_time(ds, tmp_path, capsys):
    run = tmp_path / "run"
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN]) == 2
    one_line_error(capsys, f"{run} is being trained by process {os.getpid()}", "run.lock")
    assert not run.exists()  # the second command wrote nothing
    lock.write_text(json.dumps({"pid": 2 ** 22 + 4321, "host": socket.gethostname(), "started": "then"}))  # dead
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN]) == 0
    assert not lock.exists() and (run / "checkpoints" / "best.ckpt").is_file()  # taken over, then released
    lock.write_text("garbage")  # not labelsky's: never taken over, named
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN]) == 2
    one_line_error(capsys, "run.lock exists but is not a lock labelsky wrote")


def test_two_trainings_into_one_folder_at_once_never_mix(ds, tmp_path, capsys):
    """The issue's case: a training runs (another process) while a second one starts into the same folder with
    other settings: the second stops at once, naming the first; config.json and the checkpoint are the first's."""
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "labelsky", "train", "--data", str(ds.path), "--out", str(run),
                              "--lr", "0.01", "--seed", "1", *TRAIN[:4], "--batch-size", "2", "--device", "cpu"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not (tmp_path / "run.lock").exists():
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        assert time.time() - t0 < 240, "the first training never took its lock"
        time.sleep(0.05)
    assert main(["train", "--data", str(ds.path), "--out", str(run), "--lr", "0.0001", "--seed", "2", *TRAIN]) == 2
    one_line_error(capsys, f"is being trained by process {first.pid}")
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["lr"], config["seed"]) == (0.01, 1) and not (tmp_path / "run.lock").exists()


# --------------------------------------------------------------------------------------------- names and limits
def test_a_survey_name_is_a_folder_name_never_a_path(tmp_path, capsys):
    from labelsky.data.surveys import get_survey

    spec = get_survey("des").to_dict()
    for name in ("/tmp/elsewhere", "../up", "a/b", ".hidden"):
        path = tmp_path / "my.yaml"
        path.write_text(yaml.safe_dump({**spec, "name": name}, sort_keys=False))
        assert main(["simulate", "--surveys", str(path), "--n", "4", "--out", str(tmp_path / "sim")]) == 2
        one_line_error(capsys, "field 'name'", "folder name")
    assert not (tmp_path / "sim").exists()


def _huge_fits(path, side=20000):
    """A FITS file whose header claims a side x side float32 image, with almost no data after it (an honest
    such file would be 1.6 GB; its compressed version a few MB)."""
    from astropy.io import fits

    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": side, "NAXIS2": side})
    path.write_bytes(header.tostring().encode() + b"\0" * 2880)
    return path


def test_fits_pixel_limits_are_read_from_the_header(tmp_path, capsys):
    import tracemalloc

    big = _huge_fits(tmp_path / "huge.fits")
    tracemalloc.start()
    assert main(["import", "detect", str(big), "--out", str(tmp_path / "det")]) == 2
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    one_line_error(capsys, "400000000 pixels", "--max-pixels")
    assert peak < 50e6  # refused from the header: nothing the size of the image was allocated
    # a cutout side beyond the limit is refused before any file is read
    cat = tmp_path / "cat.csv"
    cat.write_text(f"id_str,ra,dec,file\na,1.0,2.0,{big}\n")
    assert main(["import", "fits-cutouts", str(cat), "--size", "20000", "--out", str(tmp_path / "fc")]) == 2
    one_line_error(capsys, "--size", "20000", "--max-pixels")
    # a huge cutout file in a catalog is one row left out (named), never read
    from labelsky.data.importers.base import ImportRowError
    from labelsky.data.importers.fits import read_fits_cutout

    with pytest.raises(ImportRowError, match="400000000 pixels"):
        read_fits_cutout(big, ["g"], max_pixels=10_000_000)


def test_a_pipe_as_the_first_picture_is_never_opened(tmp_path, capsys):
    from PIL import Image

    fifo = tmp_path / "a0.png"
    os.mkfifo(fifo)
    for i in (1, 2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"a{i}.png")
    cat = tmp_path / "cat.csv"
    cat.write_text("id_str,ra,dec,file\n" + "".join(f"a{i},{i}.0,1.0,a{i}.png\n" for i in range(3)))
    result = {}
    t = threading.Thread(target=lambda: result.update(code=main(["import", "pictures", str(cat), "--out",
                                                                 str(tmp_path / "pics")])), daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "the import hangs on the pipe"
    assert result["code"] == 0
    report = json.loads((tmp_path / "pics" / "import_report.json").read_text())
    assert len(open_dataset(tmp_path / "pics")) == 2 and "not a regular file" in json.dumps(report)


# ----------------------------------------------------------------------------------------- flux and pictures
def test_flux_and_pictures_never_train_together_silently(ds, tmp_path, capsys):
    pics = _pictures(tmp_path / "pics")
    assert main(["train", "--data", str(ds.path), str(pics.path), "--out", str(tmp_path / "t"), *TRAIN]) == 2
    one_line_error(capsys, "8-bit pictures", str(pics.path), "nanomaggy images", str(ds.path), "--render")
    assert main(["train", "--data", str(ds.path), "--unlabelled", str(pics.path), "--out", str(tmp_path / "u"),
                 *TRAIN]) == 2
    one_line_error(capsys, "8-bit pictures", "--render")
    assert main(["adapt", "--source", str(ds.path), "--target", str(pics.path), "--out", str(tmp_path / "a"),
                 *TRAIN]) == 2
    one_line_error(capsys, "the source and target mixes", "--render")
    # asked for (an ablation), it trains
    assert main(["train", "--data", str(ds.path), "--unlabelled", str(pics.path), "--out", str(tmp_path / "m"),
                 "--mixed-units", *TRAIN]) == 0


# ------------------------------------------------------------------------------------------------- checkpoints
def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    from labelsky.methods import training

    path = tmp_path / "last.ckpt"
    training.save_atomically({"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {}}, path)
    good = path.read_bytes()

    def full_disk(obj, fh):  # the disk fills half-way through the write
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        training.save_atomically({"state_dict": {"w": torch.zeros(3)}, "hyper_parameters": {}}, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp left


def test_a_truncated_last_checkpoint_resumes_from_the_best_one_and_says_so(ds, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN]) == 0
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # what a full disk left under older versions
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN[:2], "--epochs", "2",
                 *TRAIN[4:]]) == 0
    err = capsys.readouterr().err
    assert "cannot be read safely" in err and "resuming from" in err and "best.ckpt" in err
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1  # epoch 2 trained, saved whole
    # without a good checkpoint beside it: one line with the remedy
    (run / "checkpoints" / "best.ckpt").write_bytes(b"junk")
    last.write_bytes(b"junk")
    assert main(["train", "--data", str(ds.path), "--out", str(run), *TRAIN[:2], "--epochs", "3",
                 *TRAIN[4:]]) == 2
    one_line_error(capsys, "no readable best.ckpt", "--overwrite")


class Payload:
    """An object a checkpoint should never hold (unpickling it would run code)."""


def test_a_checkpoint_holding_code_is_refused_without_torch_advice(tmp_path):
    from labelsky.errors import RunFolderError
    from labelsky.methods.run import load_checkpoint

    bad = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "obj": Payload()}, bad)
    with pytest.raises(RunFolderError) as err:
        load_checkpoint(bad)
    assert "never unpickles" in str(err.value) and "weights_only" not in str(err.value)


# ------------------------------------------------------------------------------------ evaluate --reference
def test_evaluate_reference_on_runs_without_class_probabilities(tmp_path, capsys):
    """A semisup run and a richness run against datasets without votes / richness: the domain gap, no traceback."""
    from labelsky.cli import main

    voted = write_dataset(tmp_path / "voted")
    bare_cols = {c: voted.column(c) for c in voted.catalog.column_names if c not in ("shard", "row")}
    bare_cols.update(votes_smooth=np.full(len(voted), -1, np.int32), votes_featured=np.full(len(voted), -1, np.int32),
                     votes_artifact=np.full(len(voted), -1, np.int32),
                     richness=np.full(len(voted), np.nan, np.float32), split=["unlabelled"] * len(voted))
    w = DatasetWriter(tmp_path / "bare", "decals", tuple(voted.image_shape), classes=voted.classes, n_shards=1,
                      config={"seed": 9})
    w.write_shard(0, np.stack([voted.image(i) for i in range(len(voted))]), bare_cols)
    w.finalize()
    runs = {"semisup": ["semisup", "--latent-dim", "4", "--epochs", "1", "--batch-size", "4", "--device", "cpu"],
            "richness": ["richness", "--backbone", "resnet10t", "--feature-dim", "8", "--fc-widths", "8",
                         "--epochs", "1", "--fractions", "1.0", "--folds", "2", "--repeats", "1"]}
    for name, cmd in runs.items():
        run = tmp_path / name
        assert main([*cmd, "--data", str(voted.path), "--out", str(run)]) == 0, capsys.readouterr().err
        capsys.readouterr()
        assert main(["evaluate", "--run", str(run), "--data", str(tmp_path / "bare"), "--split", "all",
                     "--reference", str(voted.path), "--reference-split", "all"]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "only the domain gap" in out and "AUROC" in out
        assert main(["evaluate", "--run", str(run), "--data", str(tmp_path / "bare"), "--split", "all"]) == 2
        one_line_error(capsys, "--reference")


def test_randomise_ranges_take_no_more_and_no_fractions_of_a_quality():
    from labelsky.data.transforms import NuisanceRandomisation
    from labelsky.errors import SettingsError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for bad in ("blur=1:2:3", "jpeg_quality=50.7:90.2"):
            with pytest.raises(SettingsError):
                NuisanceRandomisation.parse_overrides(bad)


# ------------------------------------------------------------------------------------- imports: size and resume
def _cutout(path, side_y, side_x, seed=0):
    """A g r z FITS cutout (one HDU per band, FILTER named) of side_y x side_x pixels, no WCS (the survey's
    pixel scale)."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    hdus = [fits.PrimaryHDU()]
    for b in "grz":
        h = fits.ImageHDU(rng.normal(1.0, 0.1, (side_y, side_x)).astype(np.float32))
        h.header["FILTER"] = b
        hdus.append(h)
    fits.HDUList(hdus).writeto(path, overwrite=True)


def test_fits_cutouts_take_the_first_cutouts_side_and_pad_a_narrower_one(tmp_path, capsys):
    """Without --size, 32-px cutouts stay 32 px (not the survey's 64, 75 % NaN); a 32 x 25 one among them is
    padded with masked pixels and flagged (7 of 32 columns bad: beyond --max-masked 0.2), as docs/failures.md says."""
    rows = []
    for i in range(4):
        _cutout(tmp_path / f"c{i}.fits", 32, 25 if i == 2 else 32, seed=i)
        rows.append(f"c{i},{10 + i}.0,1.0,c{i}.fits\n")
    (tmp_path / "cat.csv").write_text("id_str,ra,dec,file\n" + "".join(rows))
    assert main(["import", "fits-cutouts", str(tmp_path / "cat.csv"), "--survey", "decals", "--out",
                 str(tmp_path / "d")]) == 0
    assert "cutout side 32 pixels, from the first readable cutout" in capsys.readouterr().err
    ds = open_dataset(tmp_path / "d")
    assert tuple(ds.image_shape) == (3, 32, 32) and len(ds) == 4
    ids = list(ds.column("id_str"))
    assert [bool(ds.column("flag_masked")[ids.index(f"c{i}")]) for i in range(4)] == [False, False, True, False]
    narrow = ds.image(ids.index("c2"))
    assert np.isnan(narrow).mean() == pytest.approx(7 / 32) and np.isfinite(ds.image(ids.index("c0"))).all()
    report = json.loads((tmp_path / "d" / "import_report.json").read_text())
    assert [(p["id_str"], p["action"]) for p in report["problems"]] == [("c2", "flagged")]


def test_import_detect_size_zero_is_refused(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["import", "detect", str(tmp_path / "x.png"), "--size", "0", "--out", str(tmp_path / "d")]) == 2
    one_line_error(capsys, "--size", "= 0")
    assert not (tmp_path / "d").exists()


def test_replaced_cutout_files_under_an_interrupted_import_are_never_mixed(tmp_path, monkeypatch, capsys):
    """Each cutout file's size and modification time are part of the import's identity: a file replaced (here
    by another galaxy's file of the very same size) before the resume makes the rerun stop, naming why."""
    import shutil

    import labelsky.data.importers.base as base

    for i in range(4):
        _cutout(tmp_path / f"c{i}.fits", 8, 8, seed=i)
    (tmp_path / "cat.csv").write_text("id_str,ra,dec,file\n" + "".join(f"c{i},{i}.0,1.0,c{i}.fits\n"
                                                                      for i in range(4)))
    cmd = ["import", "fits-cutouts", str(tmp_path / "cat.csv"), "--survey", "decals", "--size", "8",
           "--shard-size", "2", "--out", str(tmp_path / "d")]
    real = base.DatasetWriter.write_shard
    calls = []

    def dying(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the first shard
        return real(self, *a, **k)

    monkeypatch.setattr(base.DatasetWriter, "write_shard", dying)
    assert main(cmd) == 130
    monkeypatch.setattr(base.DatasetWriter, "write_shard", real)
    target = tmp_path / "c3.fits"
    before = target.stat()
    shutil.copyfile(tmp_path / "c0.fits", target)  # same size, other pixels
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 10 ** 9))  # later, on any timestamp resolution
    assert target.stat().st_size == before.st_size
    capsys.readouterr()
    assert main(cmd) == 2
    one_line_error(capsys, "unfinished dataset", "image files", "--overwrite")
    assert main([*cmd, "--overwrite"]) == 0


# ------------------------------------------------------------------------------------------- validate, cluster
def test_validate_finds_two_swapped_image_shards_of_equal_size(tmp_path, capsys):
    from conftest import write_dataset as write_shards

    write_shards(tmp_path / "d", sizes=(4, 4))
    images = tmp_path / "d" / "images"
    a, b = sorted(images.glob("shard-*.h5"))
    a.rename(images / "swap")
    b.rename(a)
    (images / "swap").rename(b)
    assert main(["validate", str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert out.count("shards swapped or replaced") == 2, out


def test_cluster_refuses_too_few_rows_and_an_output_inside_the_dataset(ds, tmp_path, capsys):
    """Both refused before the run is read (here there is none)."""
    few = write_dataset(tmp_path / "few", n=5)
    assert main(["cluster", "--run", str(tmp_path / "norun"), "--data", str(few.path), "--out",
                 str(tmp_path / "c")]) == 2
    one_line_error(capsys, "5 row(s)", "at least 6")
    assert main(["cluster", "--run", str(tmp_path / "norun"), "--data", str(ds.path), "--out",
                 str(ds.path / "clusters")]) == 2
    one_line_error(capsys, "inside an input")
    assert not (ds.path / "clusters").exists() and not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------------- messages
def test_a_weight_file_holding_code_is_one_line_without_torch_advice(tmp_path):
    from labelsky.errors import SettingsError
    from labelsky.methods.selfsup.richness import load_extractor_state
    from labelsky.models.backbones import read_state_dict
    from labelsky.models.provenance import _checkpoint_hyper_parameters

    bad = tmp_path / "x.pt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "obj": Payload()}, bad)
    for load in (read_state_dict, load_extractor_state, _checkpoint_hyper_parameters):
        with pytest.raises(SettingsError) as err:
            load(bad)
        text = str(err.value)
        assert "never unpickles" in text and "weights_only" not in text and "\n" not in text, (load, text)


def test_a_marker_without_a_kind_and_a_lock_without_a_start_are_named_plainly(tmp_path):
    from labelsky.errors import OutputError
    from labelsky.outputs import OutputLock, prepare_output

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    for marker in ({"made_by": "labelsky"}, {"made_by": "labelsky", "kind": 5}):
        (folder / ".labelsky").write_text(json.dumps(marker))
        with pytest.raises(OutputError, match="holds a labelsky output of unknown kind, not a run") as err:
            prepare_output(folder, kind="run")
        assert "None" not in str(err.value) and " 5" not in str(err.value)
    (tmp_path / "g.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(OutputError) as err:
        OutputLock(tmp_path / "g").__enter__()
    assert f"being written by process {os.getpid()} on {socket.gethostname()};" in str(err.value)
    assert "None" not in str(err.value)


def test_a_full_disk_while_a_checkpoint_is_written_is_one_plain_line(tmp_path, monkeypatch):
    """torch's zip writer turns the full disk into 'RuntimeError: [enforce fail ...] unexpected pos'; the command
    says the disk is full, naming the checkpoint, without the system's '[Errno 28]'."""
    from labelsky.cli import _os_error
    from labelsky.methods import training

    def full_disk(obj, fh):
        try:
            fh.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    monkeypatch.setattr(training.torch, "save", full_disk)
    path = tmp_path / "last.ckpt"
    with pytest.raises(OSError) as err:
        training.save_atomically({"state_dict": {}}, path)
    assert err.value.errno == 28 and err.value.filename == str(path) and not list(tmp_path.iterdir())
    line = _os_error(err.value)
    assert line.startswith(f"the disk is full: {path};") and "Errno" not in line and "rerun" in line
    # a library's own words for it (pyarrow: "Detail: [errno 28] ...") are not repeated either
    line = _os_error(OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device"))
    assert "errno" not in line.lower() and line.startswith("the disk is full;")


def test_an_error_under_an_open_progress_bar_starts_its_own_line(tmp_path, monkeypatch, capsys):
    import sys

    from tqdm.auto import tqdm

    import labelsky.cli.data as cli_data
    from labelsky.errors import InputDataError

    def failing_show(a):
        bar = tqdm(total=10, desc="import", file=sys.stderr)
        bar.update(3)  # left open, as a bar is when the command fails under it
        raise InputDataError(f"{a.path}: the disk went away")

    monkeypatch.setattr(cli_data, "cmd_show", failing_show)
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "labelsky: error:" in x)
    assert line.startswith("labelsky: error:") and "the disk went away" in line
