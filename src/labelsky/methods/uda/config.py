"""Settings of universal domain adaptation: DeepAstroUDA, DANCE and source-only training."""

from __future__ import annotations

from dataclasses import dataclass

from labelsky.errors import SettingsError
from labelsky.methods.settings import InputSettings, TrainSettings, setting

__all__ = ["UDAConfig", "METHODS", "PAIR_RULES"]

METHODS = ("deepastrouda", "dance", "source_only")
#: the rules that label a pair with an unlabelled member similar or not (:func:`.losses.pair_labels`)
PAIR_RULES = ("ordered", "unordered", "features", "confident")


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
    k_rank: int | None = None  # top-k of the rank statistics: 3 for <= 5 classes, 7 above (the paper)
    pair_rule: str = setting("confident", choices=list(PAIR_RULES),
                             help="deepastrouda: how a pair with a target galaxy is labelled similar: confident "
                                  "(same class, both sure; uncertain galaxies left out; the default, chosen by "
                                  "the pair labels' precision and recall, docs/uda.md), ordered (the paper: same "
                                  "ordered top-k class probabilities), unordered (same top-k set), features "
                                  "(same top-k feature dimensions)")
    ac_cross: bool = setting(True, negate=True,
                             help="ablation: target galaxies meet only target rows of the bank, not source rows")
    ac_balanced: bool = False  # weigh similar and dissimilar pairs equally
    ac: bool = setting(True, negate=True, help="ablation: without the adaptation term (AC's target pairs for "
                                               "deepastrouda, NC for dance)")
    source_pairs: bool | None = setting(None, optional=True,
                                        help="the source pairs' part of L_AC (source galaxies against the bank's "
                                             "source rows, similar when the labels agree) as its own term: default "
                                             "on for deepastrouda, off for dance / source_only (on gives a baseline "
                                             "the same source supervision)")
    pair_diagnostics: bool = setting(False, help="log per epoch the precision and recall of the similarity labels "
                                                 "of every pair rule against the target's class names (simulated or "
                                                 "labelled targets; the names never enter a loss)")
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
        if self.pair_rule not in PAIR_RULES:
            raise SettingsError(f"unknown pair rule {self.pair_rule!r}; expected one of {list(PAIR_RULES)}")
        if self.source_pairs is None:
            self.source_pairs = self.method == "deepastrouda"
        if self.grad_log_every < 0:
            raise SettingsError(f"grad_log_every must be >= 0, got {self.grad_log_every}")
        if self.dsbn and self.method == "source_only":
            raise SettingsError("source_only never sees the target, so its target batch norms would stay untrained: "
                                "use dsbn=False")
