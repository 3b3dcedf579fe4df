"""Semi-supervised morphology from Galaxy Zoo vote counts (ET-VAE).

Registered as the method ``semisup`` (regimes ``supervised``, ``semi``,
``two_step`` in :class:`SemiSupConfig`). Predictions are vote fractions of
smooth / featured / artifact and the latent mean as the embedding.
"""

from labelsky.methods.lazy import lazy_exports
from labelsky.methods.registry import DataRole, MethodSpec, register_method
from labelsky.methods.semisup.config import ANSWERS, REGIMES, SemiSupConfig

__all__ = ["SemiSupConfig", "SemiSupModule", "REGIMES", "ANSWERS", "fit", "select_rows", "SPEC"]

__getattr__ = lazy_exports(__name__, {"SemiSupModule": "module", "fit": "module", "select_rows": "module"})


def _smoke(device: str) -> SemiSupConfig:
    return SemiSupConfig(regime="semi", latent_dim=4, width=4, max_epochs=1, batch_size=4, seed=0, device=device)


SPEC = register_method(MethodSpec(
    name="semisup", config_cls=SemiSupConfig, output="fractions",
    model="labelsky.methods.semisup.module:SemiSupModule", implementation="labelsky.methods.semisup.module",
    inputs=(DataRole("data", "dataset with Galaxy Zoo votes (votes_* columns)"),),
    smoke=_smoke, variants=REGIMES,
    description="semi-supervised vote fractions with the Equivariant-Transformer VAE (three regimes)"))
