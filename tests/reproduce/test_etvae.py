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
