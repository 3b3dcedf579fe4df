"""labelsky.methods.run: data identity, interrupted and finished fits."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_dataset
from labelsky.data.io import open_dataset
from labelsky.methods.run import Run, describe_parts


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
