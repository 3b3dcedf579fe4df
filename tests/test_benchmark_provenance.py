"""Benchmark result files trace to a commit: the scripts refuse to write from a modified tree, and the
committed results say which ones predate that rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: results written before the rule, from a modified tree or across commits; each is to be regenerated from a
#: clean tree (and then removed from this list: the test fails while a listed file has become clean)
LEGACY: set = set()


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _code(start, end=None, modified=(False, False)):
    end = start if end is None else end
    return {"at_start": {"commit": start, "src_modified": modified[0]},
            "at_end": {"commit": end, "src_modified": modified[1]}}


def test_provenance_problems_against_hand_cases(common):
    assert common.provenance_problem(_code("a" * 40)) is None
    assert "no commit" in common.provenance_problem(_code("unknown"))
    assert "no commit" in common.provenance_problem({})
    assert "modified at its end" in common.provenance_problem(_code("a" * 40, modified=(False, True)))
    assert "modified at its start" in common.provenance_problem(_code("a" * 40, modified=(None, False)))
    assert "changed while it ran" in common.provenance_problem(_code("a" * 40, "b" * 40))


def test_a_result_from_a_modified_tree_is_refused_unless_told(common, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "_CODE_AT_START", {"commit": "a" * 40, "src_modified": True})
    monkeypatch.setattr(common, "code_version", lambda: {"commit": "a" * 40, "src_modified": True})
    monkeypatch.delenv(common.ALLOW_MODIFIED, raising=False)
    with pytest.raises(SystemExit) as exit_:
        common.write_results("x", {"m": 1}, "table", out_dir=tmp_path)
    assert exit_.value.code == 2 and "src/ was modified" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
    monkeypatch.setenv(common.ALLOW_MODIFIED, "1")
    jpath, _ = common.write_results("x", {"m": 1}, "table", out_dir=tmp_path)
    assert json.loads(jpath.read_text())["code"]["at_end"]["src_modified"] is True  # and it says so
    monkeypatch.setattr(common, "code_version", lambda: {"commit": "unknown", "src_modified": None})
    monkeypatch.setattr(common, "_CODE_AT_START", {"commit": "unknown", "src_modified": None})
    monkeypatch.delenv(common.ALLOW_MODIFIED)
    with pytest.raises(SystemExit):
        common.write_results("y", {"m": 1}, "table", out_dir=tmp_path)


def test_reused_runs_must_have_been_trained_at_this_commit(common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "code_version", lambda: {"commit": "a" * 40, "src_modified": False})
    runs = [{"run_dir": "r0", "trained_now": True}, {"run_dir": "r1", "trained_now": True}]
    for r in runs:
        (tmp_path / r["run_dir"]).mkdir()
    assert common.stamp_runs(runs, tmp_path) is None
    assert runs[0]["trained_by"]["commit"] == "a" * 40 and runs[0]["trained_by"]["command"]
    # a second invocation at the same commit reuses them
    again = [{"run_dir": "r0", "trained_now": False}, {"run_dir": "r1", "trained_now": False}]
    assert common.stamp_runs(again, tmp_path) is None
    # at another commit, the reused runs are refused by commit
    monkeypatch.setattr(common, "code_version", lambda: {"commit": "b" * 40, "src_modified": False})
    why = common.stamp_runs([dict(r) for r in again], tmp_path)
    assert why and "2 of 2" in why and "a" * 40 in why
    # a run without a record (made before runs were stamped) is refused too
    (tmp_path / "old").mkdir()
    assert "no record" in common.stamp_runs([{"run_dir": "old", "trained_now": False}], tmp_path)


def test_every_committed_result_traces_to_a_commit_or_is_listed_for_regeneration(common):
    problems = {}
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        why = common.provenance_problem(json.loads(path.read_text()).get("code"))
        if why:
            problems[path.stem] = why
    assert set(problems) - LEGACY == set(), {k: v for k, v in problems.items() if k not in LEGACY}
    assert LEGACY - set(problems) == set(), "regenerated cleanly: remove from LEGACY"


def test_gpu_suite_is_valid_bash_and_refuses_a_machine_without_a_gpu(tmp_path):
    import subprocess
    import sys

    import torch

    script = ROOT / "benchmarks" / "gpu_suite.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the suite would run")
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_SUITE_WORK": str(tmp_path)})
    assert res.returncode == 2 and "no CUDA GPU" in res.stderr
