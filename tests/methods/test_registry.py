"""Every registered method, the way timm's tests loop over every registered model.

For each method: build from its config, train a tiny run (a step or two),
``load_run`` it back, predict with the registry's contract, resume it with the
same settings, and refuse to resume it with other settings or other data.
A method registered without a case here fails ``test_every_method_has_a_case``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.errors import OutputError, RunFolderError, SettingsError
from labelsky.methods.registry import OUTPUTS, get_method, list_methods
from labelsky.methods.run import load_run, run_method
from labelsky.outputs import MARKER

SIZE = 16
CLASSES = ["round", "long"]
#: where the tiny runs train: the CPU here; LABELSKY_TEST_DEVICE=cuda runs the same loop on a GPU
DEVICE = os.environ.get("LABELSKY_TEST_DEVICE", "cpu")


def _write(path, n: int = 24, seed: int = 0, clusters: bool = False):
    """A finalized g r z dataset of ``n`` objects (16 x 16 px) with labels, votes, richness and cluster ids."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(path, "decals", (3, SIZE, SIZE), classes=CLASSES, n_shards=1, config={"seed": seed})
    label = np.arange(n) % 2
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    imgs = rng.normal(0, 0.05, size=(n, 3, SIZE, SIZE)).astype(np.float32)
    for i in range(n):  # class 0: a round blob, class 1: an elongated one
        q = 1.0 if label[i] == 0 else 0.25
        imgs[i] += np.exp(-(xx ** 2 * q + yy ** 2) / 8.0)[None] * (1 + np.arange(3))[:, None, None]
    split = np.array(["train", "train", "val", "test"])[np.arange(n) % 4]
    votes = rng.integers(1, 20, size=(n, 3)).astype(np.int32)
    cols = {"id_str": [f"o{seed}-{i:03d}" for i in range(n)], "ra": rng.uniform(0, 10, n),
            "dec": rng.uniform(-5, 5, n), "survey": ["decals"] * n, "split": split.tolist(),
            "label": label.astype(np.int16), "label_name": [CLASSES[k] for k in label],
            "votes_smooth": votes[:, 0], "votes_featured": votes[:, 1], "votes_artifact": votes[:, 2],
            "richness": rng.uniform(20, 80, n).astype(np.float32)}
    if clusters:
        cols["cluster_id"] = [f"c{i // 2:03d}" for i in range(n)]
    w.write_shard(0, imgs, cols)
    w.finalize()
    return open_dataset(path)


def _case(name: str, root):
    """``(datasets, config)`` of a tiny run of method ``name``."""
    spec = get_method(name)
    common = dict(seed=0, device=DEVICE, num_workers=0)
    if name == "transfer":
        return [_write(root / "d")], spec.config_cls(backbone="resnet10t", hidden=[8], max_epochs=1, batch_size=8,
                                                     augment=False, **common)
    if name == "uda":
        return [_write(root / "s"), _write(root / "t", seed=1)], spec.config_cls(
            backbone="resnet10t", max_epochs=1, batch_size=4, **common)
    if name == "semisup":
        return [_write(root / "d")], spec.config_cls(regime="semi", latent_dim=4, width=4, max_epochs=1,
                                                     batch_size=4, **common)
    if name == "pretext":
        return [_write(root / "d")], spec.config_cls(backbone="resnet10t", feature_dim=8, max_epochs=1,
                                                     batch_size=8, **common)
    if name == "richness":
        return [_write(root / "d", clusters=True)], spec.config_cls(backbone="resnet10t", feature_dim=8,
                                                                    fc_widths=[8], epochs=1, batch_size=8,
                                                                    seed=0, device=DEVICE)
    raise KeyError(name)


CASES = ("transfer", "uda", "semisup", "pretext", "richness")


def test_every_method_has_a_case():
    assert sorted(list_methods()) == sorted(CASES), "a registered method without a case in this test"


def test_unknown_method_is_a_settings_error():
    with pytest.raises(SettingsError, match="registered methods: .*transfer"):
        get_method("nosuch")


@pytest.mark.parametrize("name", CASES)
def test_method_builds_trains_loads_predicts_and_refuses_other_settings(tmp_path, name):
    import dataclasses

    spec = get_method(name)
    assert spec.output in OUTPUTS
    datasets, cfg = _case(name, tmp_path)
    run = tmp_path / "run"
    model = spec.fit(run, datasets, cfg, progress=False)
    assert isinstance(model, spec.module_cls)

    # the run folder: marker, config.json naming the method, a checkpoint
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == name == run_method(run) and "labelsky_version" in config
    assert (run / MARKER).is_file() and (run / "checkpoints" / "best.ckpt").is_file()

    # load_run + the prediction contract
    loaded = load_run(run)
    assert type(loaded) is spec.module_cls
    ds = datasets[-1]
    if name == "pretext":
        x = torch.randn(5, 1, SIZE, SIZE)
    else:
        pre = spec.preprocess(loaded, ds)
        x = torch.stack([pre(ds.image(i)) for i in range(5)])
    if spec.prepare is not None:
        spec.prepare(loaded, "target")
    loaded, x = loaded.to(DEVICE), x.to(DEVICE)
    with torch.inference_mode():
        out = {k: v.cpu() for k, v in loaded.predict_step(x, 0).items()}
    names = spec.output_names(loaded)
    assert out[spec.output].shape == (5, len(names)) and len(names) >= 1
    assert out["embedding"].shape[0] == 5 and out["embedding"].ndim == 2
    if spec.output in ("probs", "fractions"):
        assert torch.allclose(out[spec.output].sum(1), torch.ones(5), atol=1e-5)
    assert torch.isfinite(out[spec.output]).all()

    # the same settings resume (nothing to refuse); a longer run may resume too
    spec.fit(run, datasets, cfg, progress=False)

    # other settings: refused, naming the setting, and nothing is deleted
    lr_field = "lr"
    other = dataclasses.replace(cfg, **{lr_field: cfg.lr * 10})
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(RunFolderError, match=r"lr: 0\.001 -> 0\.01"):
        spec.fit(run, datasets, other, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before

    # other data: refused
    if name == "uda":
        other_data = [datasets[0], _write(tmp_path / "t2", seed=2)]
    elif name == "richness":
        other_data = [_write(tmp_path / "d2", seed=2, n=28, clusters=True)]
    else:
        other_data = [_write(tmp_path / "d2", seed=2, n=28)] + datasets[1:]
    with pytest.raises(RunFolderError, match="data"):
        spec.fit(run, other_data, cfg, progress=False)

    # --overwrite starts again (the run is labelsky's), but never replaces an input
    spec.fit(run, datasets, other, progress=False, overwrite=True)
    assert json.loads((run / "config.json").read_text())["config"]["lr"] == pytest.approx(cfg.lr * 10)
    with pytest.raises(OutputError, match="input"):
        spec.fit(datasets[0].path, datasets, cfg, progress=False, overwrite=True)
    assert len(open_dataset(datasets[0].path)) == len(datasets[0])  # the input is intact
