"""Measures that need no trained run: metrics, open-set reports, the domain gap, embeddings and their clusters,
figures. They take arrays (and datasets for pictures) and never import a method; run-level evaluation that loads
a model lives in :mod:`labelsky.evaluate`."""
