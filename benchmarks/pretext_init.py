"""Benchmark: the band-pretext backbone as the starting point of the transfer-learning classifier.

The generality row of the band-identity pretext (Liang et al.): the backbone trained by `labelsky pretrain` on
simulated SDSS cluster fields (``RUN/backbone.safetensors``, one input band, first convolution adapted to the
classifier's bands) initialises `labelsky train` on simulated SDSS galaxies (elliptical vs spiral, ugriz), against
the same network from random initialisation, over seeds; test accuracy on the SDSS test split. Both starts train
under the same protocol (every block from the first epoch, as random initialisation does); as extra rows, the
transfer method's protocol for pretrained weights (head first, then progressive unfreezing) from the pretext
weights and from random weights in a file (the control that separates protocol from weights).
Writes benchmarks/results/pretext_init.json and .md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pretext-run", type=Path, default=Path("/tmp/labelsky_bench/owg2/pretext"),
                    help="a `labelsky pretrain` run folder (benchmarks/owg.py makes one)")
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/pretext_init"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    a = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.measures.metrics import classification_report
    from labelsky.methods.parts import Part
    from labelsky.methods.predict import predict
    from labelsky.methods.transfer import TransferConfig, fit

    weights = a.pretext_run / "backbone.safetensors"
    if not weights.exists():
        raise SystemExit(f"{weights} not found: run benchmarks/owg.py first (or pass --pretext-run)")
    from safetensors.torch import load_file, save_file

    from labelsky.models.backbones import create_backbone

    random_file = a.work_dir / "random_backbone.safetensors"  # random weights of the pretext's shapes
    a.work_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(12345)
    import json

    backbone = json.loads((a.pretext_run / "config.json").read_text())["config"]["backbone"]
    first_conv = next(v for v in load_file(str(weights)).values() if v.ndim == 4)
    rnd = create_backbone(backbone, int(first_conv.shape[1]))[0].state_dict()
    save_file({k: v.contiguous() for k, v in rnd.items()}, str(random_file))
    ds = simulate_galaxies(a.work_dir / "sim", n_objects=a.n, surveys=["sdss"],
                           classes={"elliptical": 0.5, "spiral": 0.5}, stamp_size=64, workers=2, progress=False,
                           reuse=True)["sdss"]
    split, label = ds.column("split"), ds.column("label")
    tr, va, te = (np.flatnonzero((split == s) & (label >= 0)) for s in ("train", "val", "test"))
    runs = []
    starts = {"random": (None, "all"), "pretext": (str(weights), "all"),
              "pretext, progressive": (str(weights), "progressive"),
              "random file, progressive": (str(random_file), "progressive")}
    for init, (w, protocol) in starts.items():
        for seed in a.seeds:
            every = dict(head_epochs=0, unfreeze_groups=10_000) if protocol == "all" else {}
            cfg = TransferConfig(backbone=backbone, weights=w, max_epochs=a.epochs, batch_size=32, seed=seed,
                                 patience=a.epochs, device="cpu", **every)
            run = a.work_dir / "runs" / f"{init.replace(', ', '_').replace(' ', '_')}_seed{seed}"
            model = fit(run, {"train": [Part(ds, tr)], "val": [Part(ds, va)]}, cfg, progress=False).model
            p = predict(model, ds, te, embed=False)["output"]
            rep = classification_report(label[te], p.argmax(1), len(ds.classes), ds.classes)
            runs.append({"init": init, "seed": seed, "accuracy": rep["accuracy"], "f1": rep["f1"]})
    summary = {}
    for init in starts:
        acc = [r["accuracy"] for r in runs if r["init"] == init]
        f1 = [r["f1"] for r in runs if r["init"] == init]
        summary[init] = {"accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc, ddof=1)),
                         "f1_mean": float(np.mean(f1)), "f1_std": float(np.std(f1, ddof=1))}
    rows = [[init, "every block from epoch 0" if starts[init][1] == "all" else "head first, progressive unfreezing",
             f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}", f"{s['f1_mean']:.3f} ± {s['f1_std']:.3f}"]
            for init, s in summary.items()]
    md = (f"### {backbone} morphology classifier (elliptical vs spiral, SDSS ugriz 64 px, {len(tr)} training / "
          f"{len(te)} test galaxies, {a.epochs} epochs, {len(a.seeds)} seeds): random initialisation vs the band-"
          f"pretext backbone ({weights})\n\n" + md_table(["initialisation", "protocol", "test accuracy", "F1"], rows))
    write_results("pretext_init", {"summary": summary, "runs": runs, "n_train": int(len(tr)), "n_test": int(len(te)),
                                   "backbone": backbone}, md)


if __name__ == "__main__":
    main()
