"""Importers of real survey data into labelsky datasets (FITS cutouts and images, Galaxy10, Galaxy Zoo, pictures,
sources detected in a large image)."""

__all__ = ["ID_COLUMNS", "import_detections", "join_votes"]


def __getattr__(name):
    """``import_detections`` (needs photutils), ``join_votes`` and ``ID_COLUMNS`` on first use."""
    if name == "import_detections":
        from labelsky.data.importers.detect import import_detections

        return import_detections
    if name in ("join_votes", "ID_COLUMNS"):
        from labelsky.data.importers import votes

        return getattr(votes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
