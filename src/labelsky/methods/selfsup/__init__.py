"""Optical-wavelength-guided self-supervision: band-identity pretext and cluster-richness regression.

Two registered methods:

``pretext``   which band (or which colour order) is this image? A run's
              ``extractor.pt`` / ``backbone.safetensors`` initialise other models.
              Predictions: probabilities of the bands for single-band images.
``richness``  ln(lambda) of galaxy-cluster fields from their band images,
              optionally from a pretext extractor. Predictions: ``values``.
"""

from labelsky.methods.registry import MethodSpec, register_method
from labelsky.methods.selfsup import pretext, richness
from labelsky.methods.selfsup.pretext import (TASKS, PretextConfig, PretextModule, fit_pretext, fit_pretext_run,
                                              load_pretext)
from labelsky.methods.selfsup.richness import (RichnessConfig, RichnessModel, cross_validate, fit_richness,
                                               load_richness)

__all__ = ["PretextConfig", "PretextModule", "fit_pretext", "fit_pretext_run", "load_pretext", "RichnessConfig",
           "RichnessModel", "fit_richness", "load_richness", "cross_validate", "PRETEXT", "RICHNESS"]


def _pretext_preprocess(model, ds):
    from labelsky.errors import SettingsError

    raise SettingsError("a pretext run classifies single-band images by band; it makes no catalog of a dataset: "
                        "use its extractor.pt / backbone.safetensors to initialise a transfer or richness run")


PRETEXT = register_method(MethodSpec(
    name="pretext", config_cls=PretextConfig, module_cls=PretextModule, select_rows=pretext.select_rows,
    fit=fit_pretext_run, load=load_pretext, output="probs", variants=TASKS, preprocess=_pretext_preprocess,
    description="self-supervised pretext: which band / which colour order is this image"))

RICHNESS = register_method(MethodSpec(
    name="richness", config_cls=RichnessConfig, module_cls=RichnessModel, select_rows=richness.select_rows,
    fit=fit_richness, load=load_richness, output="values", output_names=lambda model: ["ln_richness"],
    preprocess=lambda model, ds: model.preprocess(ds),
    description="galaxy-cluster richness ln(lambda) from the band images (MSE + alpha std|y - y_hat|)"))
