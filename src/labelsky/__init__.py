"""labelsky: galaxy morphology, anomaly and cluster-richness catalogs from few labels and many survey images.

The names below are the library's front door; each is imported on first use, so ``import labelsky`` stays
light (no torch) until a method is needed.

* surveys and datasets: :class:`Survey`, :func:`get_survey`, :func:`list_surveys`, :func:`register_survey`,
  :func:`open_dataset`, :class:`DatasetWriter`, :class:`LabelskyDataset`;
* methods and runs: :func:`list_methods`, :func:`get_method`, :func:`train` (a registered method into a run
  folder), :func:`load_run` (the trained model of a run folder), :func:`predict` (the one prediction path);
* catalogs: :func:`write_catalog`; reproductions: :func:`list_reproductions`, :func:`get_reproduction`.
"""

from labelsky._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "Survey": "labelsky.data.surveys", "get_survey": "labelsky.data.surveys", "list_surveys": "labelsky.data.surveys",
    "register_survey": "labelsky.data.surveys",
    "open_dataset": "labelsky.data.io", "DatasetWriter": "labelsky.data.io", "LabelskyDataset": "labelsky.data.io",
    "list_methods": "labelsky.methods.registry", "get_method": "labelsky.methods.registry",
    "train": "labelsky.methods.registry",
    "load_run": "labelsky.methods.run", "predict": "labelsky.methods.predict",
    "write_catalog": "labelsky.catalog.writer",
    "list_reproductions": "labelsky.reproduce.registry", "get_reproduction": "labelsky.reproduce.registry",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labelsky' has no attribute {name!r}")


def __dir__():
    return __all__
