"""Settings of the transfer-learning method (Khan et al. 2019): backbone, progressive unfreezing, recursion."""

from __future__ import annotations

from dataclasses import dataclass, field

from labelsky.errors import SettingsError
from labelsky.methods.settings import InputSettings, TrainSettings, setting

__all__ = ["TransferConfig"]

RECURSION = "recursive training with pseudo-labels (Khan et al. 2019)"


@dataclass
class TransferConfig(TrainSettings, InputSettings):
    """Settings of the transfer-learning classifier and its recursive pseudo-label rounds."""

    backbone: str = setting("xception41", help="any timm model name (default: the paper's Xception; resnet18 is "
                                                "~8x faster on a CPU)")
    weights: str | None = setting(None, help="local weight file, or 'timm' to download (needs internet); default: "
                                             "random initialisation")
    hidden: list = field(default_factory=lambda: [1024])
    dropout: float = 0.7
    backbone_lr_factor: float = 0.1
    weight_decay: float = 0.0
    head_epochs: int = setting(2, check="non_negative_int", help="epochs of head-only training first")
    unfreeze_every: int = setting(2, check="positive_int", help="epochs between unfreezing steps")
    unfreeze_groups: int = setting(1, check="positive_int",
                                   help="backbone groups unfrozen per step; with --head-epochs 0 and a number >= the "
                                        "groups (e.g. 100) every group trains from the first epoch, as from random "
                                        "initialisation (weak weights, e.g. of labelsky pretrain)")
    patience: int | None = setting(5, check="non_negative_int", help="early stopping on validation loss",
                                   resumable=True)
    plateau_patience: int = 2
    plateau_factor: float = 0.3
    augment: bool = True
    max_rotation: float = 45.0
    max_shift: float = 0.1
    max_zoom: float = 1.3
    # what the head learns: class labels (cross-entropy), or Galaxy Zoo vote counts of the first question or of a
    # whole decision tree (the summed per-question Dirichlet-multinomial likelihood, labelsky.methods.semisup)
    questions: str = setting("classes", choices=["classes", "first", "gz2", "decals-dr5"],
                             help="classes (default: the catalog's labels) or Galaxy Zoo votes: first (smooth / "
                                  "featured / artifact) or every question of a decision tree (gz2, decals-dr5)")
    # recursive training with pseudo-labels of --unlabelled datasets (Khan et al. 2019, section III)
    rounds: int | None = setting(None, check="non_negative_int", group=RECURSION, resumable=True,
                                 help="pseudo-labelling rounds after round 0 (default with --unlabelled: 1); more "
                                      "rounds added to a finished run resume it")
    k_per_class: int = setting(1000, check="positive_int", group=RECURSION,
                               help="pseudo-labels per class and round, the most confident (default 1000, the "
                                    "paper's)")
    min_confidence: float = setting(0.9, check="fraction", group=RECURSION,
                                    help="least confidence of a pseudo-label; also the threshold of the confident "
                                         "fraction (default 0.9)")
    cluster_filter: bool = setting(False, group=RECURSION,
                                   help="keep only pseudo-labels whose t-SNE + k-means cluster has the same class")
    perplexity: float = 30.0  # t-SNE perplexity of the cluster filter
    # t-SNE gradient method of the cluster filter (labelsky.measures.embeddings.tsne): "auto" (Barnes-Hut below
    # 10,000 rows, fast for small pools), "fft", "bh", or None (fft in 2-D, the Khan et al. reproduction's maps)
    tsne_method: str | None = "auto"

    def target_columns(self) -> list[str] | None:
        """The vote-count columns the head learns from, or None for class labels."""
        if self.questions == "classes":
            return None
        from labelsky.methods.semisup.config import vote_columns

        return vote_columns(self.questions)

    def _check(self):
        if self.questions not in ("classes", "first", "gz2", "decals-dr5"):
            raise SettingsError(f"unknown questions {self.questions!r}; expected classes, first, gz2 or decals-dr5")
        if self.rounds is not None and self.rounds < 0:
            raise SettingsError(f"rounds must be >= 0, got {self.rounds}")
        if self.k_per_class < 1:
            raise SettingsError(f"k_per_class must be >= 1, got {self.k_per_class}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise SettingsError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
