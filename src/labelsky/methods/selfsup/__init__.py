"""Optical-wavelength-guided self-supervision: band-identity pretext and cluster-richness regression.

Two registered methods:

``pretext``   (``labelsky pretrain``) which band (or which colour order) is this
              image? A run's ``extractor.pt`` / ``backbone.safetensors``
              initialise other models; on a dataset it predicts an embedding
              (the band features of each galaxy side by side).
``richness``  (``labelsky richness``) ln(lambda) of galaxy-cluster fields from
              their band images, optionally from a pretext extractor, with the
              cross-validated Base vs Ours. Predictions: ``values``.
"""

from labelsky.methods.lazy import lazy_exports
from labelsky.methods.registry import DataRole, MethodSpec, register_method
from labelsky.methods.selfsup.config import TASKS, PretextConfig, RichnessConfig

__all__ = ["PretextConfig", "PretextModule", "RichnessConfig", "RichnessModel", "cross_validate", "PRETEXT",
           "RICHNESS"]

__getattr__ = lazy_exports(__name__, {"PretextModule": "pretext", "RichnessModel": "richness",
                                      "cross_validate": "richness"})

#: options of a method that reads single bands, or trains by a plain loop on one device, does not take
_NO_RENDER = ("render", "jpeg_quality", "randomise", "mask_channel", "noise_survey")
_ONE_DEVICE = ("num_workers", "devices", "num_nodes", "strategy")


def _pretext_smoke(device: str) -> PretextConfig:
    return PretextConfig(backbone="resnet10t", feature_dim=8, max_epochs=1, batch_size=8, seed=0, device=device)


def _richness_smoke(device: str) -> RichnessConfig:
    return RichnessConfig(backbone="resnet10t", feature_dim=8, fc_widths=[8], max_epochs=1, batch_size=8, seed=0,
                          device=device, fractions=[1.0], folds=2, repeats=1)


PRETEXT = register_method(MethodSpec(
    name="pretext", command="pretrain", config_cls=PretextConfig, output="embedding",
    model="labelsky.methods.selfsup.pretext:PretextModule", implementation="labelsky.methods.selfsup.pretext",
    inputs=(DataRole("data", "multi-band dataset (no labels needed)"),),
    smoke=_pretext_smoke, variants=TASKS, cli_exclude=_NO_RENDER,
    description="self-supervised pretext training: which band / which colour order"))

RICHNESS = register_method(MethodSpec(
    name="richness", config_cls=RichnessConfig, output="values",
    model="labelsky.methods.selfsup.richness:RichnessModel", implementation="labelsky.methods.selfsup.richness",
    inputs=(DataRole("data", "cluster dataset (richness and cluster_id columns)"),),
    smoke=_richness_smoke, cli_exclude=_NO_RENDER + _ONE_DEVICE,
    description="cluster richness from band images: cross-validated Base vs pretrained"))
