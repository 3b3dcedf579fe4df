"""labelsky.methods.run: data identity, interrupted and finished fits."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_dataset
from labelsky.data.io import open_dataset
from labelsky.methods.parts import describe_parts
from labelsky.methods.run import Run


def test_relabelled_rows_are_other_data(tmp_path):
    write_dataset(tmp_path / "d")
    ds = open_dataset(tmp_path / "d")
    rows = np.arange(6)
    a = describe_parts([(ds, rows, None)])
    assert a == describe_parts([(ds, rows, None)])
    assert a != describe_parts([(ds, rows, (ds.column("label")[rows] + 1) % 3)])  # same rows, other labels
    assert a != describe_parts([(ds, rows[:5], None)])


class _Trainer:
    """What Run.fit needs of a Lightning trainer."""

    max_epochs = 3
    interrupted = False

    class checkpoint_callback:
        best_model_path = ""

    def __init__(self, exc=None):
        self.exc = exc

    def fit(self, *a, **k):
        if self.exc is not None:
            self.interrupted = True
            raise self.exc


def test_ctrl_c_during_fit_is_a_keyboard_interrupt(tmp_path):
    run = Run.start(tmp_path / "r", method="transfer", config={"lr": 1}, data={})
    with pytest.raises(KeyboardInterrupt):  # Lightning exits after its graceful shutdown: labelsky says interrupted
        run.fit(_Trainer(SystemExit(1)), None, None)


def test_a_config_from_before_the_rendering_settings_still_matches():
    from labelsky.methods.run import config_differences

    new = {"lr": 0.001, "render": None, "jpeg_quality": None, "randomise": None}
    assert config_differences({"lr": 0.001}, new, "") == []
    assert config_differences({"lr": 0.001}, dict(new, render="sdss"), "") == ["render: None -> 'sdss'"]
    assert config_differences({"lr": 0.001}, {"lr": 0.001, "other": 1}, "") == ["other: '<unset>' -> 1"]


def test_input_warnings_name_units_and_sizes(tmp_path):
    """A dataset unlike the run's training data is named: other pixel units, other image sizes (and the
    model's input size they were both resized to)."""
    import json

    import numpy as np

    from conftest import make_columns
    from labelsky.data.io import DatasetWriter, open_dataset
    from labelsky.methods.run import input_warnings

    run = tmp_path / "run"
    run.mkdir()
    trained = {"flux_unit": "nanomaggy", "image_shape": [3, 48, 48]}
    (run / "config.json").write_text(json.dumps({"method": "transfer", "config": {"image_size": 32},
                                                 "data": {"train": [trained]}}))
    w = DatasetWriter(tmp_path / "pics", "decals", (3, 24, 24), classes=["a", "b"], n_shards=1, config={},
                      extra_meta={"flux_unit": "display"})
    w.write_shard(0, np.zeros((2, 3, 24, 24), np.float32), make_columns(2, label=np.zeros(2, np.int16),
                                                                          label_name=["a", "a"]))
    w.finalize()
    units, size = input_warnings(run, open_dataset(tmp_path / "pics"))
    assert "holds display images" in units and "trained on nanomaggy images" in units
    assert "24 x 24 pixel images" in size and "datasets of 48 x 48 pixel images" in size
    assert "both resized to the model's 32 x 32" in size
