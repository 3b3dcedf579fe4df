"""The active hyperparameter tuner of DeepAstroUDA (Algorithm 1) for the entropy-separation loss.

State: the boundary ``rho`` (initially ``log(K) / 2``), the confidence
margin ``m`` (initially ``m0``), the step index ``j`` into
``steps = [0.3, -0.3, 0.5, -0.5]``, an epoch counter and a change counter.
After every epoch the monitored loss ``L`` is compared with the best so far,
``L_min``. While it improves nothing changes. When it does not
(``L >= L_min``), and enough epochs have passed since the last change:

===========  ==================  ==============================
change       after epochs        action
===========  ==================  ==============================
0            > 5                 ``rho += steps[j]``
1            > 2                 ``m += steps[j]``
2            > 2                 ``m = 2 m``
3            > 2                 ``j = (j + 1) mod 4``; change counter back to 0
===========  ==================  ==============================

Each action resets the epoch counter and (except the last) increments the
change counter, as the paper's algorithm says. The paper's OCR-damaged
listing does not say which loss is monitored; labelsky monitors the total
training loss of the epoch by default (target labels are unknown during
training) and logs every change. ``m`` is kept >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["EntropyTuner", "initial_margin"]

STEPS = (0.3, -0.3, 0.5, -0.5)


def initial_margin(n_classes: int) -> float:
    """Paper: m0 in 0.2-0.8 for fewer than five classes, 1.1-1.6 for more; labelsky takes the middles."""
    return 0.5 if n_classes < 5 else 1.35


@dataclass
class EntropyTuner:
    n_classes: int
    m0: float | None = None
    rho: float = field(init=False)
    m: float = field(init=False)
    j: int = 0
    epoch: int = 0
    change: int = 0
    best: float = math.inf
    history: list = field(default_factory=list)

    def __post_init__(self):
        self.rho = math.log(self.n_classes) / 2.0
        self.m = initial_margin(self.n_classes) if self.m0 is None else float(self.m0)

    def step(self, loss: float, epoch_index: int | None = None) -> str | None:
        """Feed the epoch's monitored loss; returns a description of the change made, if any."""
        self.epoch += 1
        if loss < self.best:
            self.best = loss
            return None
        action = None
        if self.change == 0 and self.epoch > 5:
            self.rho += STEPS[self.j]
            action = f"rho -> {self.rho:.3f}"
        elif self.change == 1 and self.epoch > 2:
            self.m = max(self.m + STEPS[self.j], 0.0)
            action = f"m -> {self.m:.3f}"
        elif self.change == 2 and self.epoch > 2:
            self.m = 2.0 * self.m
            action = f"m -> {self.m:.3f} (doubled)"
        elif self.change == 3 and self.epoch > 2:
            self.j = (self.j + 1) % len(STEPS)
            action = f"step -> {STEPS[self.j]:+.1f}"
        if action is None:
            return None
        self.change = 0 if self.change == 3 else self.change + 1
        self.epoch = 0
        self.history.append({"epoch": epoch_index, "action": action, "rho": self.rho, "m": self.m, "loss": loss})
        return action

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("rho", "m", "j", "epoch", "change", "best", "history")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
