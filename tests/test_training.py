"""Training on several processes: 2-process DDP on CPU (gloo) through the command line."""

import json
import os
import subprocess
import sys

import numpy as np

from labelsky.data.io import DatasetWriter


def _labelled(path, n=160, size=16):
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 2, n)
    imgs = rng.normal(size=(n, 3, size, size)) * 0.01 + lab[:, None, None, None] * 0.05
    w = DatasetWriter(path, "decals", (3, size, size), classes=["a", "b"], n_shards=1)
    w.write_shard(0, imgs, {
        "id_str": [f"o{i}" for i in range(n)], "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-30, 30, n),
        "survey": ["decals"] * n, "split": np.where(np.arange(n) % 4 == 0, "val", "train"), "label": lab,
        "label_name": np.array(["a", "b"])[lab], "votes_smooth": np.full(n, -1), "votes_featured": np.full(n, -1),
        "votes_artifact": np.full(n, -1), "richness": np.full(n, np.nan)})
    return w.finalize()


def test_two_process_ddp_on_cpu_processes_agree(tmp_path):
    _labelled(tmp_path / "ds")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "labelsky", "train", "--data", str(tmp_path / "ds"), "--out", str(run),
           "--backbone", "resnet10t", "--epochs", "2", "--batch-size", "16", "--device", "cpu",
           "--devices", "2", "--strategy", "ddp"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [json.loads((run / "ranks" / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert [rep["world_size"] for rep in reports] == [2, 2]
    # same weights after training: gradients were averaged over the two processes at every step
    assert reports[0]["parameters_sha256"] == reports[1]["parameters_sha256"]
    # each process saw half of the 120 training images: 60 // 16 -> 3 full batches per epoch (one process: 7)
    assert reports[0]["global_step"] == reports[1]["global_step"] == 2 * 3
    # logged metrics are averaged over the processes, so both report the same values
    m0, m1 = reports[0]["metrics"], reports[1]["metrics"]
    assert {"train_loss", "val_loss", "val_acc"} <= set(m0) and m0 == m1
    assert (run / "checkpoints" / "best.ckpt").exists()
    assert "trained resnet10t" in r.stdout and r.stdout.count("trained resnet10t") == 1  # rank 0 only reports
    # --overwrite with other settings: rank 0 replaces the run once; the second process never deletes it
    r = subprocess.run(cmd + ["--overwrite", "--lr", "0.002", "--epochs", "1"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["config"]["lr"] == 0.002
    reports = [json.loads((run / "ranks" / f"rank-{k}.json").read_text()) for k in (0, 1)]
    assert reports[0]["global_step"] == reports[1]["global_step"] == 3
    assert (run / "checkpoints" / "best.ckpt").exists()
