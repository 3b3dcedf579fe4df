"""Occlusion maps (Zeiler & Fergus 2014): how a classifier's confidence changes when part of the image is hidden.

A ``patch`` x ``patch`` square, filled with ``fill`` (0: the sky level after
the ``robust_asinh`` / ``asinh`` stretches), slides over the image with
``stride``; the map holds the probability of the target class at every
position (low = that region mattered). Liang et al. (Figure 2) use it on the
band-identity classifier with member galaxies and stars marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["occlusion_map", "occlusion_figure"]


@torch.inference_mode()
def occlusion_map(model, image: torch.Tensor, target: int, patch: int = 8, stride: int = 4, fill: float = 0.0,
                  batch_size: int = 64) -> np.ndarray:
    """[n_rows, n_cols] probability of ``target`` with the patch centred on each grid position.

    ``image`` is one preprocessed image [C, H, W]; ``model(x)`` returns logits.
    Grid position (i, j) covers rows ``i*stride : i*stride+patch`` (and the
    same for columns).
    """
    c, h, w = image.shape
    tops = list(range(0, h - patch + 1, stride))
    lefts = list(range(0, w - patch + 1, stride))
    boxes = [(t, lf) for t in tops for lf in lefts]
    probs = []
    for i in range(0, len(boxes), batch_size):
        batch = image[None].repeat(len(boxes[i:i + batch_size]), 1, 1, 1).clone()
        for k, (t, lf) in enumerate(boxes[i:i + batch_size]):
            batch[k, :, t:t + patch, lf:lf + patch] = fill
        probs.append(torch.softmax(model(batch), dim=1)[:, target])
    return torch.cat(probs).view(len(tops), len(lefts)).cpu().numpy()


def occlusion_figure(panels: list, path, patch: int, stride: int) -> Path:
    """Rows of (image, occlusion map) with members (blue dots) and stars (red circles) marked.

    ``panels``: dicts with ``image`` [H, W], ``map``, ``title`` and optional
    ``members`` / ``stars`` as (x, y) pixel arrays.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.measures.figures import save_figure

    fig, axes = plt.subplots(len(panels), 2, figsize=(6, 3 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels):
        h, w = p["image"].shape
        row[0].imshow(p["image"], cmap="gray", origin="lower")
        ext = (patch / 2 - 0.5, patch / 2 - 0.5 + stride * p["map"].shape[1],
               patch / 2 - 0.5, patch / 2 - 0.5 + stride * p["map"].shape[0])
        im = row[1].imshow(p["map"], cmap="viridis", origin="lower", extent=ext, vmin=0, vmax=1)
        fig.colorbar(im, ax=row[1], fraction=0.046, label="p(correct band)")
        for ax in row:
            if p.get("members") is not None:
                ax.scatter(*p["members"], s=8, c="tab:blue", label="member")
            if p.get("stars") is not None:
                ax.scatter(*p["stars"], s=40, facecolors="none", edgecolors="red", label="star")
            ax.set_xlim(-0.5, w - 0.5), ax.set_ylim(-0.5, h - 0.5)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_title(p.get("title", ""), fontsize=8)
    axes[0][1].legend(fontsize=6, loc="upper right")
    return save_figure(fig, path)
