"""``reproduce etvae``: finished runs are reused only under the same settings."""

import pytest

from labelsky.errors import SettingsError
from labelsky.reproduce.etvae import ETVAEReproConfig, _check_settings


def test_a_folder_of_runs_made_with_other_settings_is_refused(tmp_path):
    _check_settings(tmp_path, ETVAEReproConfig.quick())
    _check_settings(tmp_path, ETVAEReproConfig.quick(seeds=[0, 1, 2], label_counts=[40]))  # more seeds: reused
    with pytest.raises(SettingsError, match="optimisers"):
        _check_settings(tmp_path, ETVAEReproConfig.quick(optimisers="shared"))
    with pytest.raises(SettingsError, match="val_fraction"):
        _check_settings(tmp_path, ETVAEReproConfig.quick(val_fraction=0.3))
    (tmp_path / "older" / "runs").mkdir(parents=True)
    with pytest.raises(SettingsError, match="without a settings record"):
        _check_settings(tmp_path / "older", ETVAEReproConfig.quick())


def test_settings_record_refuses_other_settings_and_unrecorded_runs(tmp_path):
    from labelsky.errors import SettingsError
    from labelsky.utils import check_settings_record

    check_settings_record(tmp_path / "a", {"n": 3, "sizes": (1, 2)}, error=SettingsError)
    check_settings_record(tmp_path / "a", {"n": 3, "sizes": (1, 2)}, error=SettingsError)  # tuples read back as lists
    with pytest.raises(SettingsError, match=r"other settings \{'n': \(3, 4\)\}"):
        check_settings_record(tmp_path / "a", {"n": 4, "sizes": (1, 2)}, error=SettingsError)
    (tmp_path / "b" / "runs").mkdir(parents=True)
    with pytest.raises(SettingsError, match="without a settings record"):
        check_settings_record(tmp_path / "b", {"n": 3}, error=SettingsError, unrecorded="runs")
