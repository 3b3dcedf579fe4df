"""The active hyperparameter tuner of DeepAstroUDA (Algorithm 1) for the entropy-separation loss.

State: the boundary ``rho`` (initially ``log(K) / 2``), the confidence
margin ``m`` (initially ``m0``), the step index ``j`` into the step sizes, an
epoch counter and a change counter. After every epoch the monitored loss ``L``
is compared with the best since the last change, ``L_min``. While it improves
nothing changes. When it does not (``L >= L_min``), and enough epochs have
passed since the last change:

===========  ==================  ==============================
change       after epochs        action
===========  ==================  ==============================
0            > 5                 ``rho += steps[j]``
1            > 2                 ``m += steps[j]``
2            > 2                 ``m = 2 m``
3            > 2                 ``j = (j + 1) mod 4``; change counter back to 0
===========  ==================  ==============================

Each action resets the epoch counter and (except the last) increments the
change counter, as the paper's algorithm says.

What labelsky reads into the parts the paper leaves open:

* **The monitored loss** is the training objective ``L`` of eq. 5 (Algorithm
  1's ``L``; the text: "once the loss stops improving"). Changing ``rho`` or
  ``m`` changes that loss by itself, so ``L_min`` restarts after every change:
  the tuner compares epochs trained under the same ``rho`` and ``m``.
* **The scale of rho and m.** Entropies are in nats, ``0 <= H <= log K``. With
  ``rho = log(K)/2`` the largest possible distance ``|H - rho|`` is
  ``log(K)/2`` (0.35 for K = 2, 1.10 for K = 9), so the paper's margins
  (0.2-0.8 below five classes, 1.1-1.6 above) would switch the loss off for
  every sample at K = 2 and K = 9. labelsky starts at ``m0 = log(K)/4`` (half
  the distance to either end: both branches act from the first step) and
  scales the paper's step sizes ``[0.3, -0.3, 0.5, -0.5]`` by
  ``log(K) / log(10)`` (the paper's values at ten classes).
* **The feasible range.** ``rho`` stays within ``[0.1, 0.9] log K`` (at
  ``log K`` nothing could ever be unknown, at 0 everything would be) and ``m``
  within ``[0, 0.9 min(rho, log K - rho)]``, so that samples on both sides of
  the boundary can still be beyond the margin. Moves are clipped to the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from labelsky.errors import SettingsError

__all__ = ["EntropyTuner", "initial_margin", "STEPS", "margin_limit"]

STEPS = (0.3, -0.3, 0.5, -0.5)
RHO_RANGE = (0.1, 0.9)  # fractions of log K
MARGIN_FRACTION = 0.9  # of the distance from rho to the nearer end of [0, log K]


def initial_margin(n_classes: int) -> float:
    """``m0 = log(K) / 4``: half of the distance from ``rho0 = log(K)/2`` to either end of the entropy range."""
    return math.log(n_classes) / 4.0


def margin_limit(rho: float, n_classes: int) -> float:
    """The largest margin that leaves both branches of the entropy-separation loss reachable."""
    return MARGIN_FRACTION * min(rho, math.log(n_classes) - rho)


@dataclass
class EntropyTuner:
    n_classes: int
    m0: float | None = None
    rho0: float | None = None
    rho: float = field(init=False)
    m: float = field(init=False)
    j: int = 0
    epoch: int = 0
    change: int = 0
    best: float = math.inf
    history: list = field(default_factory=list)

    def __post_init__(self):
        if self.n_classes < 2:
            raise SettingsError(f"entropy separation needs at least 2 known classes, got {self.n_classes}")
        log_k = math.log(self.n_classes)
        self.rho = log_k / 2.0 if self.rho0 is None else float(self.rho0)
        self.m = min(initial_margin(self.n_classes), margin_limit(self.rho, self.n_classes)) if self.m0 is None \
            else float(self.m0)
        lo, hi = (f * log_k for f in RHO_RANGE)
        if not lo <= self.rho <= hi:
            raise SettingsError(f"rho = {self.rho:.3f} is outside [{lo:.3f}, {hi:.3f}] (0.1-0.9 log K for "
                                f"K = {self.n_classes}): nothing or everything would be unknown")
        if not 0 <= self.m <= margin_limit(self.rho, self.n_classes) + 1e-12:
            raise SettingsError(f"margin m = {self.m:.3f} is outside [0, {margin_limit(self.rho, self.n_classes):.3f}]"
                                f" for rho = {self.rho:.3f} and K = {self.n_classes}: entropy separation could not "
                                "act on both sides of rho")

    @property
    def steps(self) -> tuple:
        """The paper's step sizes scaled to ``log(K) / log(10)``."""
        scale = math.log(self.n_classes) / math.log(10)
        return tuple(s * scale for s in STEPS)

    def _clip(self) -> None:
        log_k = math.log(self.n_classes)
        self.rho = min(max(self.rho, RHO_RANGE[0] * log_k), RHO_RANGE[1] * log_k)
        self.m = min(max(self.m, 0.0), margin_limit(self.rho, self.n_classes))

    def step(self, loss: float, epoch_index: int | None = None) -> str | None:
        """Feed the epoch's monitored loss; returns a description of the change made, if any."""
        self.epoch += 1
        if loss < self.best:
            self.best = loss
            return None
        action = None
        step = self.steps[self.j]
        if self.change == 0 and self.epoch > 5:
            self.rho += step
            self._clip()
            action = f"rho -> {self.rho:.3f}"
        elif self.change == 1 and self.epoch > 2:
            self.m += step
            self._clip()
            action = f"m -> {self.m:.3f}"
        elif self.change == 2 and self.epoch > 2:
            self.m = 2.0 * self.m
            self._clip()
            action = f"m -> {self.m:.3f} (doubled)"
        elif self.change == 3 and self.epoch > 2:
            self.j = (self.j + 1) % len(STEPS)
            action = f"step -> {self.steps[self.j]:+.3f}"
        if action is None:
            return None
        self.change = 0 if self.change == 3 else self.change + 1
        self.epoch = 0
        self.best = math.inf  # the loss is redefined by the change: compare epochs under the same rho and m
        self.history.append({"epoch": epoch_index, "action": action, "rho": self.rho, "m": self.m, "loss": loss})
        return action

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("rho", "m", "j", "epoch", "change", "best", "history")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
