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


def test_a_marker_that_is_not_labelsky_s_is_no_marker(tmp_path):
    """The issue's case: a user's folder with a `.labelsky` settings file (or an empty one) and a thesis."""
    for text in ("theme = dark\n", "", '{"kind": "run"}', "[1, 2]"):
        user = tmp_path / "U"
        (user / "sub").mkdir(parents=True, exist_ok=True)
        (user / "thesis.tex").write_text("keep")
        (user / MARKER).write_text(text)
        assert not is_labelsky_output(user)
        for overwrite in (False, True):  # never written into, never deleted
            with pytest.raises(OutputError, match="not labelsky's marker"):
                prepare_output(user, overwrite=overwrite, kind="run")
        assert (user / "thesis.tex").read_text() == "keep" and (user / "sub").is_dir()


def test_a_marker_copied_into_another_folder_never_lets_it_be_deleted(tmp_path):
    import shutil

    made = prepare_output(tmp_path / "made", kind="run")
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("keep")
    shutil.copy(made / MARKER, user / MARKER)  # a genuine marker, copied in
    with pytest.raises(OutputError, match="made for another folder"):
        prepare_output(user, overwrite=True, kind="run")
    assert (user / "thesis.tex").read_text() == "keep"
    copy = tmp_path / "copy"
    shutil.copytree(made, copy)  # a whole run folder copied: resumable, not deletable
    (copy / "notes.txt").write_text("keep")
    prepare_output(copy, kind="run")
    with pytest.raises(OutputError, match="made for another folder"):
        prepare_output(copy, overwrite=True, kind="run")
    assert (copy / "notes.txt").exists()
    prepare_output(made, overwrite=True, kind="run")  # the folder it was made for: replaced


def test_a_labelsky_folder_of_another_kind_is_never_written_into(tmp_path):
    sim = prepare_output(tmp_path / "sim", kind="simulation")
    (sim / "decals").mkdir()
    with pytest.raises(OutputError, match="holds a labelsky simulation, not a run"):
        prepare_output(sim, kind="run")
    assert not (sim / "config.json").exists()


def test_overwrite_deletes_only_the_files_labelsky_wrote_and_names_the_rest(tmp_path):
    import os

    from labelsky.errors import LabelskyWarning
    from labelsky.outputs import MANIFEST, finish_outputs

    out = prepare_output(tmp_path / "o", kind="run")
    (out / "sub").mkdir()
    (out / "sub" / "weights.ckpt").write_text("w")
    (out / "config.json").write_text("{}")
    finish_outputs()
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == {MARKER, "sub/weights.ckpt", "config.json"}
    for mine in (out / "thesis.tex", out / "sub" / "notes.txt"):  # put there by the user, an hour later
        mine.write_text("mine")
        os.utime(mine, (mine.stat().st_mtime - 3600,) * 2)
    with pytest.warns(LabelskyWarning, match=r"did not write; they are kept: sub/notes.txt, thesis.tex"):
        prepare_output(out, overwrite=True, kind="run")
    assert (out / "thesis.tex").read_text() == "mine" and (out / "sub" / "notes.txt").read_text() == "mine"
    assert not (out / "config.json").exists() and not (out / "sub" / "weights.ckpt").exists()
    assert is_labelsky_output(out)
    finish_outputs()
    assert json.loads((out / MANIFEST).read_text())["files"] == [MARKER]  # the user's files are never claimed
    with pytest.warns(LabelskyWarning, match="thesis.tex"):  # a second replacement keeps them too
        prepare_output(out, overwrite=True, kind="run")
    assert (out / "thesis.tex").exists()


def test_a_command_records_what_it_wrote_and_overwrite_keeps_a_users_file(tmp_path, capsys):
    import os

    from labelsky.cli import main
    from labelsky.outputs import MANIFEST

    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--n", "4", "--stamp-size", "16", "--surveys", "sdss", "--workers", "1"]
    assert main(args) == 0
    written = json.loads((out / MANIFEST).read_text())["files"]
    assert "simulation.json" in written and any(f.startswith("sdss/") for f in written)
    mine = out / "my_notes.txt"
    mine.write_text("mine")
    os.utime(mine, (mine.stat().st_mtime - 3600,) * 2)
    capsys.readouterr()
    assert main(args + ["--overwrite"]) == 0
    assert mine.read_text() == "mine" and "my_notes.txt" in capsys.readouterr().err
    assert (out / "simulation.json").exists()
