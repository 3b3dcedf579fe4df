"""Figures: confusion matrices and confidence curves (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["confusion_figure", "curve_figure", "save_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(cm, class_names, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    with np.errstate(invalid="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k))
    ax.imshow(np.nan_to_num(norm), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if np.nan_to_num(norm[i, j]) > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """tight_layout, create the folder, write a 100-dpi PNG, close the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_figure(curve: dict, path: str | Path, title: str = "") -> Path:
    """Accuracy of the most confident fraction of predictions."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.array(curve["fraction"]) * 100, np.array(curve["accuracy"]) * 100, marker="o", ms=3)
    ax.set_xlabel("most confident fraction (%)"), ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def reconstruction_figure(model, x, path, n: int = 8) -> Path:
    """Rows: input, canonical (pose undone), canonical reconstruction, reconstruction in the input pose.

    ``model`` is an :class:`labelsky.models.etvae.ETVAE`; ``x`` a batch of
    stretched images; the first band is shown.
    """
    import torch

    plt = _plt()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        r = model.elbo(x[:n])
    model.train(was_training)
    rows = [("input", x[:n]), ("canonical", r["canonical"]), ("canonical recon.", r["canonical_recon"]),
            ("reconstruction", r["recon"])]
    k = min(n, len(x))
    fig, axes = plt.subplots(len(rows), k, figsize=(1.1 * k, 1.15 * len(rows)), squeeze=False)
    for i, (name, imgs) in enumerate(rows):
        for j in range(k):
            ax = axes[i][j]
            ax.imshow(imgs[j, 0].detach().cpu().numpy(), cmap="gray", origin="lower")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    return save_figure(fig, path)
