"""Fault injection: ``kill -9`` at random points, several times, then the same command to the end.

Each kill comes after a random number of finished shards; the finished outputs must equal an uninterrupted run's,
byte for byte (image shards and catalog parts), for ``simulate`` and ``import``; ``catalog`` has its own kill -9
tests (tests/catalog/test_catalog.py) and the training commands theirs (tests/cli/test_lifecycle.py: the same
number of optimisation steps).
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.suffix in (".h5", ".parquet") and not p.name.startswith(".")}


def _killed_then_finished(cmd, out, n_shards, rng, kills=3):
    """Start ``cmd`` and kill -9 it once a random number of shards is written (``kills`` times), then run it to the
    end; returns how many kills interrupted it."""
    interrupted = 0
    for _ in range(kills):
        target = int(rng.integers(1, n_shards))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while proc.poll() is None and len(list(out.rglob("catalog/part-*.parquet"))) < target \
                and time.time() - t0 < 300:
            time.sleep(0.01)
        if proc.poll() == 0:  # it finished before the kill: nothing left to resume
            return interrupted
        proc.send_signal(signal.SIGKILL)
        interrupted += proc.wait() == -signal.SIGKILL
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return interrupted


@pytest.mark.parametrize("command", ["simulate", "import"])
def test_kill_9_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path, command):
    rng = np.random.default_rng(7)
    base = [sys.executable, "-m", "labelsky"]
    sim = ["simulate", "--surveys", "decals", "--n", "48", "--stamp-size", "24", "--shard-size", "6", "--workers",
           "1", "--classes", "elliptical,spiral"]
    if command == "simulate":
        make = lambda out: base + sim + ["--out", str(out)]  # noqa: E731
    else:
        from labelsky.data.importers.fits import export_fits_cutouts
        from labelsky.data.io import open_dataset

        subprocess.run(base + sim + ["--out", str(tmp_path / "src")], check=True, capture_output=True, timeout=600)
        cat = export_fits_cutouts(open_dataset(tmp_path / "src" / "decals"), tmp_path / "cut")
        make = lambda out: base + ["import", "fits-cutouts", str(cat), "--survey", "decals", "--size", "24",  # noqa
                                   "--shard-size", "6", "--out", str(out)]
    subprocess.run(make(tmp_path / "full"), check=True, capture_output=True, timeout=600)
    assert _killed_then_finished(make(tmp_path / "killed"), tmp_path / "killed", 8, rng) >= 1
    full, killed = _digests(tmp_path / "full"), _digests(tmp_path / "killed")
    assert len(full) >= 16 and full == killed
