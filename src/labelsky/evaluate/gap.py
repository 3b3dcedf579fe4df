"""The domain gap of a trained run between a reference dataset and another (``labelsky evaluate --reference``)."""

from __future__ import annotations

from pathlib import Path

from labelsky.data.io import DatasetError
from labelsky.measures.domain_gap import domain_gap, domain_gap_figure, nearest_neighbour_mosaic, split_rows, subsample
from labelsky.methods.predict import Predictor

__all__ = ["run_domain_gap"]


def run_domain_gap(run, ds, reference, *, split: str = "all", reference_split: str = "val+test",
                   max_rows: int = 1000, device: str = "auto", seed: int = 0, figures: bool = True) -> dict:
    """The domain gap between ``reference`` (e.g. the training survey) and ``ds`` in a trained run's embedding.

    No label of either dataset is read. Adaptation runs embed the reference
    through their source batch norms and ``ds`` through their target ones.
    ``split`` / ``reference_split``: rows of each (see :func:`split_rows`; by
    default the reference's held-out ``val+test`` rows). Writes
    ``RUN/domain_gap_<dataset>.json``, ``RUN/figures/domain_gap_<dataset>.png``
    and ``RUN/figures/nearest_neighbours_<dataset>.png`` (with ``figures``)
    and returns the :func:`domain_gap` result without the per-galaxy scores.
    """
    run = Path(run)
    predictor = Predictor(run, device=device)
    embs, chosen = [], []
    for data, part, domain in ((reference, reference_split, "source"), (ds, split, "target")):
        predictor.preprocess(data)  # a dataset the model cannot read is refused here, by name
        rows = subsample(split_rows(data, part), max_rows, seed)
        if len(rows) < 4:
            raise DatasetError(f"{data.path}: {len(rows)} row(s) in split {part!r}; the domain gap needs at least 4 "
                               f"(choose another split, or 'all')")
        predictor.set_domain(domain)
        embs.append(predictor.predict(data, rows)["embedding"])
        chosen.append(rows)
    gap = domain_gap(*embs, seed=seed)
    result = {k: v for k, v in gap.items() if not k.startswith("scores")}
    result.update(dataset=str(ds.path), split=split, reference=str(reference.path), reference_split=reference_split)
    if figures:
        from labelsky.utils import atomic_write_json

        tag = Path(ds.path).name
        try:
            atomic_write_json(run / f"domain_gap_{tag}.json", result)
            domain_gap_figure({run.name: gap}, run / "figures" / f"domain_gap_{tag}.png",
                              title=f"{Path(reference.path).name} -> {tag}")
            nearest_neighbour_mosaic(reference, chosen[0], embs[0], ds, chosen[1], embs[1],
                                     run / "figures" / f"nearest_neighbours_{tag}.png", seed=seed)
        except OSError:  # a read-only run folder: the number is still returned
            pass
    return result
