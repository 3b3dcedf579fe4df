"""labelsky: galaxy morphology, anomaly and cluster-richness catalogs from few labels and many survey images."""

__version__ = "0.1.0"

from labelsky.data.surveys import Survey, get_survey, list_surveys, register_survey  # noqa: E402
from labelsky.data.io import open_dataset, DatasetWriter, LabelskyDataset  # noqa: E402

__all__ = ["Survey", "get_survey", "list_surveys", "register_survey", "open_dataset", "DatasetWriter",
           "LabelskyDataset", "__version__"]
