"""docs/architecture.md's "How to add a method", as it stands there: one package (tests/methods/example), no other
file edited, and the method trains, resumes, refuses other settings, evaluates, clusters and catalogs through the
command line generated from its spec (and goes through the registry's loop, tests/methods/test_registry.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from tests.methods import example  # noqa: F401  (registers the method "probe")
from tests.methods.test_registry import write_dataset

from labelsky.cli import main
from labelsky.methods.registry import get_method, list_methods

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent / "example"


def test_the_docs_show_the_package_as_it_is():
    """Every file of the example package is a code block of docs/architecture.md, character for character."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    blocks = {m.group(1): m.group(2) for m in re.finditer(r"```python\n# (tests/methods/example/\S+)\n(.*?)```", doc,
                                                          re.S)}
    files = {f"tests/methods/example/{p.name}": p.read_text() for p in sorted(PACKAGE.glob("*.py"))}
    assert set(blocks) == set(files)
    for name, text in files.items():
        assert blocks[name] == text, f"{name} differs from its block in docs/architecture.md"


def test_a_new_method_is_one_package(tmp_path, capsys):
    assert "probe" in list_methods() and get_method("probe").command == "probe"
    ds = write_dataset(tmp_path / "d")
    run = tmp_path / "run"
    train = ["probe", "--data", str(ds.path), "--out", str(run), "--epochs", "1", "--batch-size", "8",
             "--device", "cpu"]
    assert main(train) == 0
    assert "trained on 12 galaxies" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["method"] == "probe"
    # the same command resumes (nothing to train), other settings are refused by name, in one line
    assert main(train) == 0
    assert "already trained 1 epoch" in capsys.readouterr().err
    assert main([*train, "--lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr: 0.001 -> 0.01" in err[0]
    # evaluate, cluster and catalog know it through the registry
    assert main(["evaluate", "--run", str(run), "--data", str(ds.path), "--split", "test"]) == 0
    assert "accuracy=" in capsys.readouterr().out
    assert main(["cluster", "--run", str(run), "--data", str(ds.path), "--out", str(tmp_path / "c"),
                 "--perplexity", "5"]) == 0
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(tmp_path / "c.parquet")]) == 0
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.num_rows == len(ds) and {"p_round", "p_long", "pred_class"} <= set(table.column_names)
