"""labelsky.outputs: the one gate for every folder labelsky writes."""

from __future__ import annotations

import json

import pytest

from labelsky.errors import OutputError
from labelsky.outputs import MARKER, check_not_input, is_labelsky_output, prepare_output


def test_new_and_empty_folders_are_created_and_marked(tmp_path):
    out = prepare_output(tmp_path / "a" / "b", kind="run")
    assert is_labelsky_output(out) and json.loads((out / MARKER).read_text())["kind"] == "run"
    (tmp_path / "empty").mkdir()
    assert is_labelsky_output(prepare_output(tmp_path / "empty", overwrite=True))


def test_a_foreign_folder_is_never_written_into_nor_deleted(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not made by labelsky"):
            prepare_output(tmp_path / "f", overwrite=overwrite)
    assert (tmp_path / "f" / "x").read_text() == "keep" and not (tmp_path / "f" / MARKER).exists()


def test_overwrite_replaces_only_labelsky_folders(tmp_path):
    out = prepare_output(tmp_path / "o")
    (out / "old").write_text("x")
    prepare_output(out)  # without overwrite: kept as it is
    assert (out / "old").exists()
    prepare_output(out, overwrite=True)
    assert not (out / "old").exists() and is_labelsky_output(out)


def test_inputs_and_their_parents_and_the_current_folder_are_refused(tmp_path, monkeypatch):
    out = prepare_output(tmp_path / "o")
    (out / "catalog.csv").write_text("id_str\n")
    with pytest.raises(OutputError, match="holds an input"):
        prepare_output(out, overwrite=True, inputs=[out / "catalog.csv"])
    with pytest.raises(OutputError, match="is an input"):
        check_not_input(out, [out])
    check_not_input(out / "sub", [out / "catalog.csv"])  # an output inside an input's folder is fine
    assert (out / "catalog.csv").exists()
    monkeypatch.chdir(out)
    with pytest.raises(OutputError, match="current folder"):
        prepare_output(".", overwrite=True)
    with pytest.raises(OutputError, match="current folder"):
        prepare_output(tmp_path / "o", overwrite=True)
    assert (out / "catalog.csv").exists()


def test_an_output_under_a_file_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file"):
        prepare_output(tmp_path / "file")
    with pytest.raises(OutputError, match="file"):
        prepare_output(tmp_path / "file" / "sub")


def test_overwrite_replaces_only_a_folder_of_the_same_kind(tmp_path):
    from labelsky.outputs import marker_kind

    sim = prepare_output(tmp_path / "sim", kind="simulation")
    (sim / "decals").mkdir()
    with pytest.raises(OutputError, match="holds a labelsky simulation, not a run"):
        prepare_output(sim, overwrite=True, kind="run")
    assert (sim / "decals").is_dir() and marker_kind(sim) == "simulation"
    prepare_output(sim, overwrite=True, kind="simulation")
    assert not (sim / "decals").exists()


def test_a_file_name_is_no_folder_name(tmp_path):
    with pytest.raises(OutputError, match="looks like a file name"):
        prepare_output(tmp_path / "x.csv", kind="dataset")
    assert not (tmp_path / "x.csv").exists()
