"""The Galaxy Zoo decision trees as data: questions, answers and which answer leads to each question.

A volunteer answers the first question of the tree; each answer leads to the
next questions, so a question is asked only of the volunteers who gave one of
its *parent* answers. Two trees are published:

``gz2``
    Galaxy Zoo 2 (Willett et al. 2013, MNRAS 435, 2835), eleven questions
    ``t01`` ... ``t11``. Column names as in Hart et al. (2016, MNRAS 461,
    3663): ``t02_edgeon_a04_yes_count`` is the count of answer ``a04_yes`` of
    question ``t02_edgeon``.
``decals-dr5``
    Galaxy Zoo DECaLS (Walmsley et al. 2022, MNRAS 509, 3966), ten questions,
    the tree of its DR5 campaign, which Galaxy Zoo DESI (Walmsley et al. 2023,
    MNRAS 526, 4768) also asked. Column names ``<question>_<answer>``, e.g.
    ``bar_weak``.

A *schema* says how a published table names the counts (:data:`SCHEMAS`):
``gz2`` (``..._count``), ``decals-dr5`` (``question_answer``) and ``desi``
(the DR8 campaign's ``question-dr8_answer``, as GZ DESI's volunteer tables
name them). labelsky stores every answer of a tree as an int32 count column
``votes_<question>_<answer>`` (:meth:`VoteTree.columns`), -1 where the galaxy
has no votes for that question; the first question's counts are also the
core columns ``votes_smooth``, ``votes_featured``, ``votes_artifact``. A
question that no volunteer reached has count 0 in every answer, which carries
no information (the vote likelihood of 0 votes is 1).

The *unconditional* probability of an answer multiplies the conditional
answer fractions along its path: p(bar strong) = p(featured) · p(edge-on: no)
· p(bar: strong | asked); a question with several parent answers (``merging``,
asked after both ``smooth`` and ``featured-or-disk``) is reached with the sum
of their probabilities (:meth:`VoteTree.unconditional`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Question", "VoteTree", "TREES", "SCHEMAS", "get_tree", "tree_of_columns", "schema_columns"]


@dataclass(frozen=True)
class Question:
    """A question, its answers in order, and the ``(question, answer)`` pairs that lead to it (none: the root)."""

    name: str
    answers: tuple
    parents: tuple = ()


@dataclass(frozen=True)
class VoteTree:
    """A Galaxy Zoo decision tree: questions in an order where every parent comes before its children."""

    name: str
    questions: tuple

    def __post_init__(self):
        seen = {}
        for q in self.questions:
            for pq, pa in q.parents:
                if pq not in seen or pa not in seen[pq]:
                    raise ValueError(f"tree {self.name}: question {q.name!r} depends on {pq}/{pa}, which is not an "
                                     "answer of an earlier question")
            seen[q.name] = q.answers

    @property
    def answers(self) -> list[tuple[str, str]]:
        """Every ``(question, answer)`` in column order."""
        return [(q.name, a) for q in self.questions for a in q.answers]

    def columns(self) -> list[str]:
        """labelsky's count columns, ``votes_<question>_<answer>``, in column order."""
        return [f"votes_{q}_{a}" for q, a in self.answers]

    def names(self) -> list[str]:
        """``<question>_<answer>`` of every answer, in column order (catalog columns add ``p_``)."""
        return [f"{q}_{a}" for q, a in self.answers]

    def slices(self) -> list[slice]:
        """The columns of each question."""
        out, start = [], 0
        for q in self.questions:
            out.append(slice(start, start + len(q.answers)))
            start += len(q.answers)
        return out

    def question(self, name: str) -> Question:
        for q in self.questions:
            if q.name == name:
                return q
        raise KeyError(f"tree {self.name} has no question {name!r}; its questions are "
                       f"{[q.name for q in self.questions]}")

    def unconditional(self, fractions: np.ndarray) -> np.ndarray:
        """Unconditional answer probabilities [n, A] from conditional answer fractions [n, A] (each question's
        fractions summing to 1): each question's fractions times the probability that it is asked."""
        fractions = np.asarray(fractions, dtype=np.float64)
        out = np.empty_like(fractions)
        index = {qa: k for k, qa in enumerate(self.answers)}
        for q, s in zip(self.questions, self.slices()):
            reach = np.ones(len(fractions)) if not q.parents else \
                sum(out[:, index[p]] for p in q.parents)
            out[:, s] = fractions[:, s] * reach[:, None]
        return out

    def asked(self, counts: np.ndarray) -> np.ndarray:
        """[n, Q] bool: the question has votes (counts >= 0 summing to more than 0)."""
        counts = np.asarray(counts)
        return np.stack([(counts[:, s] >= 0).all(1) & (counts[:, s].sum(1) > 0) for s in self.slices()], 1)


def _q(name, answers, *parents):
    return Question(name, tuple(answers), tuple(parents))


GZ2 = VoteTree("gz2", (
    _q("t01_smooth_or_features", ["a01_smooth", "a02_features_or_disk", "a03_star_or_artifact"]),
    _q("t02_edgeon", ["a04_yes", "a05_no"], ("t01_smooth_or_features", "a02_features_or_disk")),
    _q("t03_bar", ["a06_bar", "a07_no_bar"], ("t02_edgeon", "a05_no")),
    _q("t04_spiral", ["a08_spiral", "a09_no_spiral"], ("t02_edgeon", "a05_no")),
    _q("t05_bulge_prominence", ["a10_no_bulge", "a11_just_noticeable", "a12_obvious", "a13_dominant"],
       ("t02_edgeon", "a05_no")),
    _q("t06_odd", ["a14_yes", "a15_no"], ("t01_smooth_or_features", "a01_smooth"),
       ("t01_smooth_or_features", "a02_features_or_disk")),
    _q("t07_rounded", ["a16_completely_round", "a17_in_between", "a18_cigar_shaped"],
       ("t01_smooth_or_features", "a01_smooth")),
    _q("t08_odd_feature", ["a19_ring", "a20_lens_or_arc", "a21_disturbed", "a22_irregular", "a23_other",
                           "a24_merger", "a38_dust_lane"], ("t06_odd", "a14_yes")),
    _q("t09_bulge_shape", ["a25_rounded", "a26_boxy", "a27_no_bulge"], ("t02_edgeon", "a04_yes")),
    _q("t10_arms_winding", ["a28_tight", "a29_medium", "a30_loose"], ("t04_spiral", "a08_spiral")),
    _q("t11_arms_number", ["a31_1", "a32_2", "a33_3", "a34_4", "a36_more_than_4", "a37_cant_tell"],
       ("t04_spiral", "a08_spiral")),
))

DECALS_DR5 = VoteTree("decals-dr5", (
    _q("smooth-or-featured", ["smooth", "featured-or-disk", "artifact"]),
    _q("disk-edge-on", ["yes", "no"], ("smooth-or-featured", "featured-or-disk")),
    _q("has-spiral-arms", ["yes", "no"], ("disk-edge-on", "no")),
    _q("bar", ["strong", "weak", "no"], ("disk-edge-on", "no")),
    _q("bulge-size", ["dominant", "large", "moderate", "small", "none"], ("disk-edge-on", "no")),
    _q("how-rounded", ["round", "in-between", "cigar-shaped"], ("smooth-or-featured", "smooth")),
    _q("edge-on-bulge", ["boxy", "none", "rounded"], ("disk-edge-on", "yes")),
    _q("spiral-winding", ["tight", "medium", "loose"], ("has-spiral-arms", "yes")),
    _q("spiral-arm-count", ["1", "2", "3", "4", "more-than-4", "cant-tell"], ("has-spiral-arms", "yes")),
    _q("merging", ["none", "minor-disturbance", "major-disturbance", "merger"],
       ("smooth-or-featured", "smooth"), ("smooth-or-featured", "featured-or-disk")),
))

TREES = {t.name: t for t in (GZ2, DECALS_DR5)}

#: schema -> (tree, how a published table names the count of (question, answer))
SCHEMAS = {
    "gz2": ("gz2", "{q}_{a}_count"),
    "decals-dr5": ("decals-dr5", "{q}_{a}"),
    "desi": ("decals-dr5", "{q}-dr8_{a}"),
}


def get_tree(name: str) -> VoteTree:
    """The tree of a tree or schema name (``gz2``, ``decals-dr5``, ``desi``)."""
    if name in SCHEMAS:
        name = SCHEMAS[name][0]
    if name not in TREES:
        raise KeyError(f"unknown Galaxy Zoo decision tree {name!r}; expected one of {sorted(SCHEMAS)}")
    return TREES[name]


def schema_columns(schema: str) -> list[str]:
    """The published table's count column of every answer of ``schema``'s tree, in column order."""
    tree_name, fmt = SCHEMAS[schema]
    return [fmt.format(q=q, a=a) for q, a in TREES[tree_name].answers]


def tree_of_columns(columns) -> VoteTree | None:
    """The tree whose labelsky count columns (or answer names) are all in ``columns``; None if none."""
    have = set(columns)
    for tree in TREES.values():
        if set(tree.columns()) <= have or set(tree.names()) <= have:
            return tree
    return None
