"""Universal domain adaptation: DeepAstroUDA, DANCE and source-only training.

Registered as the method ``uda`` with three variants (``UDAConfig.method``):
``deepastrouda``, ``dance`` and ``source_only``. Predictions are the known-class
probabilities and the feature vector; catalogs add ``unknown`` (entropy above
the model's open-set boundary rho). ``domain`` picks the batch norms
(``target``, the default for catalogs, or ``source``).
"""

from labelsky.methods.registry import MethodSpec, register_method
from labelsky.methods.uda.module import METHODS, UDAConfig, UDAModule, load_uda
from labelsky.methods.uda.run import adapt, adaptation_rows, fit_adapt, select_rows

__all__ = ["UDAConfig", "UDAModule", "METHODS", "adapt", "adaptation_rows", "fit_adapt", "select_rows", "load_uda",
           "SPEC"]


def _unknown(model, probs) -> dict:
    from labelsky.evaluate.metrics import entropy

    return {"unknown": entropy(probs) > float(model.rho)}


def _prepare(model, domain: str) -> None:
    model.predict_domain = 0 if domain == "source" else 1


SPEC = register_method(MethodSpec(
    name="uda", config_cls=UDAConfig, module_cls=UDAModule, select_rows=select_rows, fit=fit_adapt, load=load_uda,
    output="probs", extra_columns=_unknown, prepare=_prepare, variants=METHODS,
    description="universal domain adaptation with unknown-class detection (DeepAstroUDA, DANCE, source-only)"))
