"""Settings of the band pretext and the cluster-richness network (Liang et al.)."""

from __future__ import annotations

from dataclasses import dataclass

from labelsky.data.io import LabelskyDataset
from labelsky.errors import SettingsError
from labelsky.methods.settings import STRETCHES, TrainSettings, setting

__all__ = ["PretextConfig", "RichnessConfig", "TASKS", "PROTOCOLS", "OPTIMIZERS"]

TASKS = ("bands", "channel_order")
#: ``finetune``: the extractor trains with the head; ``frozen``: only the head trains on fixed band features
PROTOCOLS = ("finetune", "frozen")
#: ``adam`` (with weight decay) or ``sgd`` (momentum ``momentum``, the paper's optimiser)
OPTIMIZERS = ("adam", "sgd")


def _task(text: str) -> str:
    """``--task``: ``bands`` or ``channel-order`` / ``channel_order``."""
    return text.replace("-", "_")


@dataclass
class PretextConfig(TrainSettings):
    """Settings of the self-supervised pretext (the images are normalised per band and image, never rendered)."""

    task: str = setting("bands", choices=["bands", "channel-order"], parse=_task,
                        help="bands: which band is this image? channel-order: which permutation of three bands?")
    bands: list | None = setting(None, nargs="+", help="bands: the bands to classify (default: all); "
                                                       "channel-order: the three bands used as RGB (default: the "
                                                       "middle three)")
    backbone: str = setting("resnet18", help="any timm model name")
    weights: str | None = setting(None, help="local weight file for the backbone (default: random initialisation)")
    feature_dim: int = setting(512, check="positive_int", help="width of the 1x1 convolution before pooling")
    stretch: str = setting("robust_asinh", choices=list(STRETCHES), help="per band and image normalisation")
    softening: float = 3.0
    image_size: int | None = setting(None, check="positive_int", help="resize to this side")
    optimizer: str = "adam"  # or "sgd" with momentum 0.9 (the paper: SGD, lr 1e-4, 100 epochs)
    max_epochs: int = 10
    patience: int | None = 4
    # also score a summary-statistics classifier on the same split (how far image statistics alone get)
    baseline: bool = setting(False, help="also score a summary-statistics classifier", resumable=True)

    def _check(self):
        self.task = _task(self.task)
        if self.task not in TASKS:
            raise SettingsError(f"unknown pretext task {self.task!r}; expected one of {TASKS}")
        if self.optimizer not in ("adam", "sgd"):
            raise SettingsError(f"unknown optimizer {self.optimizer!r}; expected 'adam' or 'sgd'")

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True):
        d = dict(d)
        rgb = d.pop("rgb_bands", None)  # earlier versions: the RGB bands of channel_order had their own field
        if rgb is not None and d.get("task") == "channel_order":
            d["bands"] = rgb
        return super().from_dict(d, strict=strict)

    def rgb_bands(self, ds: LabelskyDataset) -> list:
        """channel_order: the three bands used as RGB (default: the middle three of ``ds``)."""
        rgb = self.bands or ds.bands[max(0, len(ds.bands) // 2 - 1):][:3]
        if len(rgb) != 3:
            raise SettingsError(f"channel_order needs three bands, got {rgb}")
        return list(rgb)


@dataclass
class RichnessConfig(TrainSettings):
    """Settings of the richness network, its training and the cross-validation of Base vs Ours."""

    RENAMED = {"epochs": "max_epochs"}

    extractor: str | None = setting(None, help="extractor.pt of `labelsky pretrain` (Ours); default: a random "
                                               "extractor (Base)")
    backbone: str = setting("resnet18", help="any timm model name (the band extractor's)")
    feature_dim: int = setting(512, check="positive_int", help="width of the band extractor's features")
    fc_widths: list = setting([1024, 512], nargs="+", check="positive_int", help="widths of the hidden layers")
    alpha: float = setting(1.0, help="weight of std(|y - y_hat|) in the loss")
    freeze_extractor: bool = setting(False, flag="--freeze", help="keep the extractor fixed (only the head trains)")
    optimizer: str = "adam"  # the paper: SGD with lr 5e-6 and momentum 0.9
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4
    max_epochs: int = 30  # at most; with validation clusters the epoch of lowest validation loss is kept
    patience: int | None = None  # stop after this many epochs without a lower validation loss (None: never)
    val_fraction: float = 0.2  # of the training clusters held out to pick the epoch (none with < 5 clusters)
    batch_size: int = 32
    stretch: str = "robust_asinh"
    softening: float = 3.0
    image_size: int | None = None
    # the cross-validation the command reports (RUN/results.json): the model of the run does not depend on it
    fractions: list = setting([0.01, 0.05, 0.1, 0.2, 0.5, 1.0], nargs="+", check="fraction", resumable=True,
                              help="fractions of the training clusters that train (cross-validation)")
    folds: int = setting(10, check="at_least_2", resumable=True, help="cluster-grouped folds")
    repeats: int = setting(3, check="positive_int", resumable=True, help="cross-validation repeats")

    def _check(self):
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.patience is not None and (isinstance(self.patience, bool) or int(self.patience) < 1):
            raise SettingsError(f"patience = {self.patience!r}; expected a number of epochs >= 1 or None")

    def preprocess(self, ds: LabelskyDataset, train: bool = False):
        """Every band of ``ds``, normalised per band and image."""
        from labelsky.data.transforms import Preprocess

        n = len(ds.bands)
        return Preprocess(list(range(n)), noise=[1.0] * n, stretch=self.stretch, softening=self.softening,
                          size=self.image_size)
