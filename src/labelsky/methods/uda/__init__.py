"""Universal domain adaptation: DeepAstroUDA, DANCE and source-only training.

Registered as the method ``uda`` (command ``labelsky adapt``) with three
variants (``UDAConfig.method``): ``deepastrouda``, ``dance`` and
``source_only``. Predictions are the known-class probabilities and the
feature vector; catalogs add ``unknown`` (entropy above the model's open-set
boundary rho). The domain (``target``, the default for catalogs, or
``source``) picks the batch norms.
"""

from labelsky.methods.lazy import lazy_exports
from labelsky.methods.registry import DataRole, MethodSpec, register_method
from labelsky.methods.uda.config import METHODS, UDAConfig

__all__ = ["UDAConfig", "UDAModule", "METHODS", "adaptation_rows", "fit", "select_rows", "SPEC"]

__getattr__ = lazy_exports(__name__, {"UDAModule": "module", "adaptation_rows": "adapt", "fit": "adapt",
                                      "select_rows": "adapt"})


def _smoke(device: str) -> UDAConfig:
    return UDAConfig(backbone="resnet10t", max_epochs=1, batch_size=4, seed=0, device=device)


SPEC = register_method(MethodSpec(
    name="uda", command="adapt", config_cls=UDAConfig, output="probs",
    model="labelsky.methods.uda.module:UDAModule", implementation="labelsky.methods.uda.adapt",
    inputs=(DataRole("source", "labelled source dataset (splits train / val)"),
            DataRole("target", "target dataset (labels, if any, only for evaluation)")),
    smoke=_smoke, variants=METHODS,
    description="universal domain adaptation from a labelled source to an unlabelled target (DeepAstroUDA, "
                "DANCE, source-only) with unknown-class detection"))
