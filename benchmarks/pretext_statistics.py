"""Benchmark: can the channel-order pretext be solved without looking at structure?

The pretext of ``labelsky reproduce khan2019`` (which order are the g, r, z images in?) on simulated LSST
galaxies of the Khan et al. sample. For each stretch, a gradient-boosting classifier on per-channel summary
statistics (mean, 1/50/99th percentiles, std, MAD noise, fraction above 5 MAD-sigma: 21 numbers) of the
pretext's own images, trained on 70 % of the galaxies and scored on the rest (all six orders of each): what the
task gives away through colour, flux scale and noise level alone. Then the CNN pretext on histogram-equalised
images (``pretext_stretch="equalize"``), scored on held-out galaxies. Writes
benchmarks/results/pretext_statistics.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=400, help="galaxies")
    ap.add_argument("--stretches", nargs="+", default=["khan", "standardize", "robust_asinh", "equalize"])
    ap.add_argument("--cnn-epochs", type=int, default=4)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/pretext_statistics"))
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.methods.selfsup import pretext
    from labelsky.reproduce.khan2019 import KhanConfig, _sample

    mon = CpuMonitor().__enter__()
    kc = KhanConfig()
    ds = simulate_galaxies(a.work_dir / "sim", n_objects=a.n, surveys=[kc.pretrain_survey], seed=1000, workers=2,
                           progress=False, reuse=True, shard_size=max(32, a.n // 8), **_sample(kc, None))[
        kc.pretrain_survey]
    parts = pretext.select_rows({"data": [ds]})  # whole galaxies: 70 % train, 10 % val, 20 % test
    tr, va, te = (parts[k][0].rows for k in ("train", "val", "test"))
    fit_rows = np.concatenate([tr, va])
    stats = {}
    for stretch in a.stretches:
        cfg = pretext.PretextConfig(task="channel_order", bands=list(kc.bands), stretch=stretch, seed=0)
        stats[stretch] = pretext.pretext_statistics_baseline(ds, fit_rows, te, cfg)
    raw = pretext.pretext_statistics_baseline(ds, fit_rows, te, pretext.PretextConfig(
        task="channel_order", bands=list(kc.bands), stretch="none"))
    t = time.time()
    cfg = pretext.PretextConfig(task="channel_order", backbone=a.backbone, bands=list(kc.bands),
                                stretch="equalize", max_epochs=a.cnn_epochs, patience=a.cnn_epochs,
                                batch_size=kc.batch_size, seed=0, num_workers=0)
    rep = pretext.fit(a.work_dir / "cnn", parts, cfg, progress=False, overwrite=True).report
    cnn_s = time.time() - t
    mon.__exit__(None, None, None)
    metrics = {"n_galaxies": len(ds), "n_fit": int(len(fit_rows)), "n_test": int(len(te)), "chance": 1 / 6,
               "stats_accuracy": stats, "stats_raw_accuracy": raw,
               "cnn": {"stretch": "equalize", "backbone": a.backbone, "epochs": a.cnn_epochs,
                       "test_accuracy": rep.get("test_accuracy"), "seconds": round(cnn_s, 1)},
               "cpu": mon.as_dict()}
    md = [f"### The channel-order pretext (g, r, z) on {len(ds)} simulated {kc.pretrain_survey} galaxies",
          "", f"Gradient boosting on 21 per-channel summary statistics, {len(fit_rows)} galaxies to train, "
              f"{len(te)} held out (x 6 orders); chance 0.167.", "",
          "| images | summary-statistics accuracy |", "|---|---|", f"| fluxes (no stretch) | {raw:.3f} |"]
    md += [f"| {s} | {v:.3f} |" for s, v in stats.items()]
    md += ["", f"CNN ({a.backbone}, {a.cnn_epochs} epochs, `equalize` images, the channel-order "
               f"pretext): held-out accuracy {rep.get('test_accuracy'):.3f}.",
           "", f"Wall time {mon.wall_s / 60:.1f} min."]
    write_results("pretext_statistics", metrics, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
