"""Semi-supervised morphology from Galaxy Zoo vote counts (ET-VAE).

Registered as the method ``semisup`` (regimes ``supervised``, ``semi``,
``two_step`` in :class:`SemiSupConfig`). Predictions are vote fractions of
smooth / featured / artifact and the latent mean as the embedding.
"""

from labelsky.data.io import VOTE_COLUMNS
from labelsky.methods.registry import MethodSpec, register_method
from labelsky.methods.semisup.module import (REGIMES, SemiSupConfig, SemiSupModule, fit_semisup, fit_semisup_run,
                                             load_semisup, predict_votes, select_rows, vote_rmse)

__all__ = ["SemiSupConfig", "SemiSupModule", "REGIMES", "fit_semisup", "fit_semisup_run", "load_semisup",
           "predict_votes", "select_rows", "vote_rmse", "ANSWERS", "SPEC"]

#: the answers whose vote fractions the model predicts, in column order
ANSWERS = [c.removeprefix("votes_") for c in VOTE_COLUMNS]

SPEC = register_method(MethodSpec(
    name="semisup", config_cls=SemiSupConfig, module_cls=SemiSupModule, select_rows=select_rows,
    fit=fit_semisup_run, load=load_semisup, output="fractions", output_names=lambda model: list(ANSWERS),
    variants=REGIMES, description="Equivariant-Transformer VAE: vote fractions from few labels (three regimes)"))
