"""Settings of the ET-VAE on Galaxy Zoo vote counts, with the choice of labelled galaxies."""

from __future__ import annotations

from dataclasses import dataclass

from labelsky.data.io import VOTE_COLUMNS
from labelsky.errors import SettingsError
from labelsky.methods.settings import InputSettings, TrainSettings, setting

__all__ = ["SemiSupConfig", "REGIMES", "OPTIMISERS", "LIKELIHOODS", "ANSWERS", "QUESTIONS", "vote_columns",
           "answer_names"]

REGIMES = ("supervised", "semi", "two_step")
OPTIMISERS = ("separate", "shared")
#: vote likelihoods (:mod:`labelsky.methods.semisup.losses`)
LIKELIHOODS = ("multinomial", "dirichlet_multinomial")
#: what the vote head learns: the first question, or every question of a decision tree (labelsky.data.vote_trees)
QUESTIONS = ("first", "gz2", "decals-dr5")
#: the answers whose vote fractions the model predicts, in column order
ANSWERS = [c.removeprefix("votes_") for c in VOTE_COLUMNS]


@dataclass
class SemiSupConfig(TrainSettings, InputSettings):
    """Settings of the ET-VAE on vote counts, with the choice of labelled galaxies (a label budget)."""

    regime: str = setting("semi", choices=list(REGIMES),
                          help="supervised (labelled galaxies only), semi (alternating VAE and vote steps, the "
                               "paper's) or two_step (VAE first, then fine-tuning)")
    # which labelled (voted) galaxies train and which select the model
    labels: int | None = setting(None, check="positive_int", help="label budget: use only this many labelled "
                                 "(voted) training galaxies; the rest of the training split is unlabelled")
    selection: str | None = setting(None, choices=["budget", "split"],
                                    help="with --labels, select the model on --val-fraction of the budget (budget, "
                                         "default) or on the voted galaxies of split 'val' (split: more labels than "
                                         "the budget)")
    val_fraction: float | None = setting(None, check="fraction", help="with --labels: share of the label budget "
                                         "that selects the model and stops training (default 0.2)")
    latent_dim: int = setting(100, check="positive_int", help="latent dimensions (default 100, the paper's code)")
    width: int = 32
    et_groups: list = setting(["translation", "rotation_scale"], flag="--no-et", const=[],
                              help="without the Equivariant Transformer layers")  # [] = no ET layers
    head_on: str = setting("latent", choices=["latent", "features"],
                           help="the vote classifier reads the latent mean (default) or the encoder's features")
    likelihood: str = setting("multinomial", choices=list(LIKELIHOODS), help="the likelihood of the vote counts")
    questions: str = setting("first", choices=list(QUESTIONS),
                             help="learn the first question only (smooth / featured / artifact, default) or every "
                                  "question of a Galaxy Zoo decision tree (gz2, decals-dr5: the dataset needs its "
                                  "votes_<question>_<answer> columns, e.g. labelsky import --schema, or simulated)")
    beta: float = 1.0  # weight of the KL term
    batch_size: int = 64
    max_epochs: int = 20
    pretrain_epochs: int = setting(10, check="positive_int", help="two_step: VAE epochs")
    patience: int | None = 6
    steps_per_epoch: int | None = setting(None, check="positive_int",
                                          help="classifier updates per epoch, the same in every regime (default: "
                                               "one pass over the unlabelled galaxies)")
    optimisers: str = setting("separate", choices=list(OPTIMISERS),
                              help="semi: an Adam for each loss (default) or one for both")
    log_every: int = 5  # semi: measure the encoder's update from each loss every this many steps

    def _check(self):
        if self.questions not in QUESTIONS:
            raise SettingsError(f"unknown questions {self.questions!r}; expected one of {QUESTIONS}")
        if self.regime not in REGIMES:
            raise SettingsError(f"unknown regime {self.regime!r}; expected one of {REGIMES}")
        if self.optimisers not in OPTIMISERS:
            raise SettingsError(f"unknown optimisers {self.optimisers!r}; expected one of {OPTIMISERS}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise SettingsError(f"steps_per_epoch must be at least 1, got {self.steps_per_epoch}")
        if self.likelihood not in LIKELIHOODS:
            raise SettingsError(f"unknown likelihood {self.likelihood!r}; expected one of {LIKELIHOODS}")
        if self.selection not in (None, "budget", "split"):
            raise SettingsError(f"unknown selection {self.selection!r}; expected 'budget' or 'split'")
        if self.labels is None:
            given = [o for o, v in (("--selection", self.selection), ("--val-fraction", self.val_fraction))
                     if v is not None]
            if given:
                raise SettingsError(f"{' and '.join(given)} only apply with --labels N (a label budget); without "
                                    f"it the model is selected on the voted galaxies of split 'val'")


def _tree(questions: str):
    from labelsky.data.vote_trees import get_tree

    return None if questions == "first" else get_tree(questions)


def vote_columns(questions: str = "first") -> list[str]:
    """The dataset's count columns the vote head learns from."""
    tree = _tree(questions)
    return list(VOTE_COLUMNS) if tree is None else tree.columns()


def answer_names(questions: str = "first") -> list[str]:
    """The names of the predicted fractions (catalog columns ``p_<name>``)."""
    tree = _tree(questions)
    return list(ANSWERS) if tree is None else tree.names()
