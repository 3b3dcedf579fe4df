"""Settings of universal domain adaptation: DeepAstroUDA, DANCE and source-only training."""

from __future__ import annotations

from dataclasses import dataclass

from labelsky.errors import SettingsError
from labelsky.methods.settings import InputSettings, TrainSettings, setting

__all__ = ["UDAConfig", "METHODS"]

METHODS = ("deepastrouda", "dance", "source_only")


@dataclass
class UDAConfig(TrainSettings, InputSettings):
    """Settings of universal domain adaptation (input fields in InputSettings)."""

    method: str = setting("deepastrouda", choices=list(METHODS),
                          help="the variant: deepastrouda (default), dance, source_only")
    backbone: str = setting("resnet50", help="any timm name (paper: ResNet-50 from scratch)")
    weights: str | None = setting(None, help="local weight file for the backbone")
    temperature: float = 0.05
    lam: float = 0.005  # DeepAstroUDA weight of the adaptive-clustering loss (paper's lambda)
    lam_es: float = 0.05  # DeepAstroUDA weight of entropy separation (DANCE's eta: the paper takes ES from DANCE)
    eta: float = 0.05  # DANCE weight of the DA losses
    k_rank: int | None = None  # top-k feature dimensions of the rank statistics: 3 for <= 5 classes, 7 above
    rank_ordered: bool = False  # True: the top-k dimensions must also come in the same order
    rank_on: str = setting("probs", choices=["probs", "features"],
                           help="deepastrouda: similarity labels of target pairs from ordered top-k class "
                                "probabilities (the paper) or from top-k feature dimensions")
    ac_balanced: bool = False  # weigh similar and dissimilar pairs equally
    ac: bool = setting(True, negate=True, help="ablation: without the adaptation term (AC for deepastrouda, NC "
                                               "for dance)")
    es: bool = setting(True, negate=True, help="ablation: without entropy separation")
    views: bool = True  # two transformed views of every image (rotation, zoom-crop)
    tuner: bool = setting(True, negate=True, help="hold rho and m fixed (no active tuner)")
    rho: float | None = None  # None: log(K) / 2
    margin: float | None = None  # None: log(K) / 4 (see labelsky.methods.uda.tuner)
    dsbn: bool | None = setting(None, optional=True,
                                help="domain-specific batch norm (default: on for deepastrouda, off for dance / "
                                     "source_only; off = one shared batch norm, separate forward passes)")
    grad_log_every: int = 10  # measure each loss term's gradient norm every this many steps (0: never)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    step_epochs: int = 8
    gamma: float = 0.1
    batch_size: int = 32
    max_epochs: int = 40
    patience: int | None = 12
    zoom: float = 300.0 / 256.0
    classes_known: list = setting([], flag="--known", nargs="+",
                                  help="known (source) classes; default: all source classes")
    # also write RUN/embeddings.npz: latent vectors, labels and probabilities of both test sets (figures)
    save_embeddings: bool = setting(False, resumable=True)

    def _check(self):
        if self.method not in METHODS:
            raise SettingsError(f"unknown adaptation method {self.method!r}; expected one of {METHODS}")
        if self.dsbn is None:
            self.dsbn = self.method == "deepastrouda"
        if self.rank_on not in ("probs", "features"):
            raise SettingsError(f"rank_on must be 'probs' or 'features', got {self.rank_on!r}")
        if self.grad_log_every < 0:
            raise SettingsError(f"grad_log_every must be >= 0, got {self.grad_log_every}")
        if self.dsbn and self.method == "source_only":
            raise SettingsError("source_only never sees the target, so its target batch norms would stay untrained: "
                                "use dsbn=False")
