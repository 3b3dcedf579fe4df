"""Exact resume: a training run interrupted and resumed ends with the weights of one never interrupted.

A kill is emulated in-process: an exception raised when a chosen batch is about to train (Lightning writes no
checkpoint on an exception, as after kill -9). At batch 0 of an epoch the run dies at an epoch boundary; later
in the epoch it dies mid-epoch, and resumes from the last boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelsky.data.io import DatasetWriter


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks train fastest on one thread (and never wait on a busy machine's other cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Killed(Exception):
    """The emulated kill -9."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    n, size = 40, 16
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 2, n)
    imgs = rng.normal(size=(n, 3, size, size)) * 0.01 + lab[:, None, None, None] * 0.05
    w = DatasetWriter(tmp_path_factory.mktemp("exact") / "ds", "decals", (3, size, size), classes=["a", "b"],
                      n_shards=1)
    w.write_shard(0, imgs.astype(np.float32), {
        "id_str": [f"o{i}" for i in range(n)], "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-30, 30, n),
        "survey": ["decals"] * n, "split": np.where(np.arange(n) % 4 == 0, "val", "train"), "label": lab,
        "label_name": np.array(["a", "b"])[lab], "votes_smooth": rng.integers(0, 20, n),
        "votes_featured": rng.integers(0, 20, n), "votes_artifact": rng.integers(0, 3, n),
        "richness": np.full(n, np.nan)})
    return w.finalize()


def _kill_at(monkeypatch, epoch: int, batch: int) -> None:
    import lightning as L

    def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
        if trainer.current_epoch == epoch and batch_idx == batch:
            raise _Killed(f"epoch {epoch}, batch {batch}")

    monkeypatch.setattr(L.Callback, "on_train_batch_start", on_train_batch_start)  # the first callback raises


def _state(run):
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    return ckpt["state_dict"], ckpt["optimizer_states"], ckpt["global_step"]


def _same(a, b) -> None:
    (wa, oa, sa), (wb, ob, sb) = a, b
    assert sa == sb
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}"
    assert [g["lr"] for g in oa[0]["param_groups"]] == [g["lr"] for g in ob[0]["param_groups"]]


def test_train_killed_at_an_epoch_boundary_or_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch, data):
    from labelsky.methods.transfer.config import TransferConfig
    from labelsky.methods.transfer.train import train_one

    rows = np.arange(len(data))
    split = data.column("split").astype(str)
    parts = [(data, rows[split == "train"], None)], [(data, rows[split == "val"], None)]
    # dropout, augmentation and a plateau scheduler stepped every epoch (patience 0): every random draw and
    # every piece of optimiser state counts
    cfg = TransferConfig(backbone="resnet10t", batch_size=6, max_epochs=3, device="cpu", seed=3,
                         plateau_patience=0, plateau_factor=0.5, dropout=0.5, patience=None)

    def train(run):
        train_one(run, *parts, ["a", "b"], cfg, progress=False)

    train(tmp_path / "full")
    full = _state(tmp_path / "full")
    for name, (epoch, batch) in {"boundary": (1, 0), "mid": (1, 2), "late": (2, 3)}.items():
        with monkeypatch.context() as m:
            _kill_at(m, epoch, batch)
            with pytest.raises(_Killed):
                train(tmp_path / name)
        assert _state(tmp_path / name)[2] < full[2]  # it really stopped part-way
        train(tmp_path / name)  # the same command again: resumes from last.ckpt
        _same(_state(tmp_path / name), full)


@pytest.mark.parametrize("name", ["adapt", "semisup"])
def test_adapt_and_semisup_killed_at_a_boundary_or_mid_epoch_resume_to_the_same_weights(tmp_path, monkeypatch,
                                                                                           data, name):
    from labelsky.cli import main

    args = {"adapt": ["adapt", "--source", str(data.path), "--target", str(data.path), "--backbone", "resnet10t"],
            "semisup": ["semisup", "--data", str(data.path), "--latent-dim", "4", "--regime", "semi"]}[name]
    args += ["--batch-size", "6", "--epochs", "2", "--device", "cpu", "--seed", "5"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    full = _state(tmp_path / "full")
    for run, (epoch, batch) in {"boundary": (1, 0), "mid": (1, 2)}.items():
        with monkeypatch.context() as m:
            _kill_at(m, epoch, batch)
            with pytest.raises(_Killed):
                main(args + ["--out", str(tmp_path / run)])
        assert _state(tmp_path / run)[2] < full[2]
        assert main(args + ["--out", str(tmp_path / run)]) == 0
        _same(_state(tmp_path / run), full)
