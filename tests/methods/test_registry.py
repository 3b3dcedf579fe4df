"""Every registered method, the way timm's tests loop over every registered model.

For each method, with its own smoke settings and no per-method branch: train a
tiny run through the registry (``labelsky.train``: its rows, its ``fit``),
``load_run`` it back, predict with the registry's contract, resume it with the
same settings, refuse to resume it with other settings or other data, and
never replace an input; then, through the generated command line, train it
again, evaluate (or measure the domain gap), cluster and catalog it.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from tests.methods import example  # noqa: F401  (docs/architecture.md's example method goes through the loop too)

from labelsky import train
from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.errors import OutputError, RunFolderError, SettingsError
from labelsky.methods.base import LabelskyModule
from labelsky.methods.registry import OUTPUTS, get_method, list_methods
from labelsky.methods.run import load_run, run_method
from labelsky.outputs import MARKER

SIZE = 16
CLASSES = ["round", "long"]
#: where the tiny runs train: the CPU here; LABELSKY_TEST_DEVICE=cuda runs the same loop on a GPU
DEVICE = os.environ.get("LABELSKY_TEST_DEVICE", "cpu")


def write_dataset(path, n: int = 24, seed: int = 0):
    """A finalized g r z dataset of ``n`` objects (16 x 16 px) with labels, votes, richness and cluster ids: every
    method's inputs."""
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
            "richness": rng.uniform(20, 80, n).astype(np.float32),
            "cluster_id": [f"c{i // 2:03d}" for i in range(n)]}
    w.write_shard(0, imgs, cols)
    w.finalize()
    return open_dataset(path)


def inputs(spec, root, seed: int = 0, n: int = 24) -> dict:
    """One dataset for each dataset the method takes (``--data``, ``--source`` / ``--target`` ...)."""
    return {role.name: write_dataset(root / f"{role.name}-{seed}", n=n, seed=seed + i)
            for i, role in enumerate(spec.inputs) if role.required}


def test_every_method_registers_a_spec_that_builds():
    names = list_methods()
    assert {"transfer", "uda", "semisup", "pretext", "richness"} <= set(names)
    for name in names:
        spec = get_method(name)
        assert spec.output in OUTPUTS and spec.module_cls.output == spec.output
        assert issubclass(spec.module_cls, LabelskyModule) and spec.module_cls.config_cls is spec.config_cls
        assert isinstance(spec.smoke("cpu"), spec.config_cls)
        assert callable(spec.fit) and callable(spec.select_rows) and callable(spec.summary)


def test_unknown_method_is_a_settings_error():
    with pytest.raises(SettingsError, match="registered methods: .*transfer"):
        get_method("nosuch")


@pytest.mark.parametrize("name", list_methods())
def test_method_trains_loads_predicts_resumes_and_refuses_other_settings(tmp_path, name):
    spec = get_method(name)
    data, cfg = inputs(spec, tmp_path), spec.smoke(DEVICE)
    run = tmp_path / "run"
    model, report = train(spec, run, data, cfg, progress=False)
    assert isinstance(model, spec.module_cls) and isinstance(report, dict)
    assert all(isinstance(line, str) for line in spec.summary(run, report))

    # the run folder: marker, config.json naming the method, a checkpoint
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == name == run_method(run) and "labelsky_version" in config
    assert (run / MARKER).is_file() and (run / "checkpoints" / "best.ckpt").is_file()

    # load_run + the prediction contract, on the dataset's own preprocessing
    loaded = load_run(run)
    assert type(loaded) is spec.module_cls
    ds = list(data.values())[-1]
    pre = loaded.preprocess(ds)
    x = torch.stack([torch.as_tensor(pre(ds.image(i))) for i in range(5)]).to(DEVICE)
    loaded.prepare("target")
    with torch.inference_mode():
        out = {k: v.cpu() for k, v in loaded.to(DEVICE).predict_step(x, 0).items()}
    assert out["embedding"].shape[0] == 5 and out["embedding"].ndim == 2
    assert torch.isfinite(out["embedding"]).all()
    if spec.output != "embedding":
        names = loaded.output_names()
        assert out[spec.output].shape == (5, len(names)) and len(names) >= 1
        assert torch.isfinite(out[spec.output]).all()
    if spec.output in ("probs", "fractions"):
        assert torch.allclose(out[spec.output].sum(1), torch.ones(5), atol=1e-5)

    # the same settings resume (nothing to refuse)
    train(spec, run, data, cfg, progress=False)

    # other settings: refused, naming the setting, and nothing is deleted
    other = dataclasses.replace(cfg, lr=cfg.lr * 10)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(RunFolderError, match=r"lr: 0\.001 -> 0\.01"):
        train(spec, run, data, other, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before

    # other data: refused
    with pytest.raises(RunFolderError, match="data"):
        train(spec, run, inputs(spec, tmp_path, seed=7, n=28), cfg, progress=False)

    # --overwrite starts again (the run is labelsky's), but never replaces an input
    train(spec, run, data, other, progress=False, overwrite=True)
    assert json.loads((run / "config.json").read_text())["config"]["lr"] == pytest.approx(cfg.lr * 10)
    first = list(data.values())[0]
    with pytest.raises(OutputError, match="input"):
        train(spec, first.path, data, cfg, progress=False, overwrite=True)
    assert len(open_dataset(first.path)) == len(first)  # the input is intact


def _cli_options(spec, cfg) -> list:
    """The smoke settings as options of the method's generated command (the options it declares)."""
    from labelsky.cli.options import CHECK_TYPES  # noqa: F401  (the command line knows every declared check)

    args = []
    default = spec.config_cls()
    for f in dataclasses.fields(cfg):
        meta = spec.config_cls.option_of(f.name)
        value = getattr(cfg, f.name)
        if not meta.get("help") or f.name in spec.cli_exclude or value == getattr(default, f.name):
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            if value != (not meta.get("negate")):
                continue  # e.g. a default True the smoke keeps
            args.append(flag)
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        elif value is not None:
            args += [flag, str(value)]
    return args


@pytest.mark.parametrize("name", list_methods())
def test_generated_command_trains_evaluates_clusters_and_catalogs(tmp_path, name, capsys):
    """Every method through the command line generated from its spec: train, evaluate (or, for an output with
    nothing to score, the domain gap alone), cluster and catalog."""
    from labelsky.cli import main

    spec = get_method(name)
    data, cfg = inputs(spec, tmp_path), spec.smoke(DEVICE)
    run, ds = tmp_path / "run", list(data.values())[-1]
    argv = [spec.command, "--out", str(run), *_cli_options(spec, cfg)]
    for role, d in data.items():
        argv += [f"--{role}", str(d.path)]
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())["config"]
    assert {k: saved[k] for k in ("lr", "batch_size", "max_epochs", "seed")} == \
        {"lr": cfg.lr, "batch_size": cfg.batch_size, "max_epochs": cfg.max_epochs, "seed": cfg.seed}

    assert main(["evaluate", "--run", str(run), "--data", str(ds.path), "--split", "all", "--reference",
                 str(ds.path), "--reference-split", "all", "--device", DEVICE]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "domain gap" in out and (run / f"domain_gap_{ds.path.name}.json").is_file()
    gap = json.loads((run / f"domain_gap_{ds.path.name}.json").read_text())
    assert gap["n_source"] == gap["n_target"] == len(ds)
    if spec.output != "embedding":  # something to score: the report of its kind
        assert (run / f"eval_{ds.survey.name}_all.json").is_file()

    assert main(["cluster", "--run", str(run), "--data", str(ds.path), "--out", str(tmp_path / "cl"), "--k", "2",
                 "--perplexity", "5", "--device", DEVICE]) == 0, capsys.readouterr().err
    clusters = pq.read_table(tmp_path / "cl" / "clusters.parquet")
    assert clusters.num_rows == len(ds) and set(clusters.column("cluster").to_pylist()) <= {0, 1}

    catalog = tmp_path / "cat.parquet"
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(catalog), "--device",
                 DEVICE]) == 0, capsys.readouterr().err
    table = pq.read_table(catalog)
    assert table.num_rows == len(ds) and table.column("id_str").to_pylist() == list(ds.column("id_str"))
    if spec.output == "embedding":
        assert "embedding" in table.column_names
    else:
        assert len(table.column_names) > 4  # id_str, ra, dec, survey, and the method's columns
