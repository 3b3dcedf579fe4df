"""Benchmark: ``labelsky reproduce owg`` (Liang et al.) on simulated SDSS ugriz cluster fields, ~1 h on 2 CPU cores.

Pretext (band identity) accuracy of the CNN on test clusters that neither trained it nor chose its checkpoint,
against summary-statistics classifiers; richness (ln lambda) MAE, Sigma = std(|y - y_hat|) (the paper's) and the
scatter std(y - y_hat) for Base (random initialisation, the whole network trained on the labels) vs Ours (pretext
extractor, the whole network fine-tuned), the same network, optimiser, epochs, epoch selection and training subsets,
at several fractions of the training data, cluster-grouped cross-validation with repeats; the same with the
extractor frozen (only the head trains) as extra rows; the training-mean predictor and gradient boosting on
per-band summary statistics as references. To fit a CPU hour: 32 px fields, 64-wide features, head FC 256/64
(paper: 512; 1024/512; image size not stated), Adam 1e-3 (paper: SGD 5e-6), at most 20 epochs with early stopping;
every knob is an option. The paper's claims to test: Ours below Base in MAE and Sigma at every fraction, and Ours
matching Base-at-100 % with <= 60 % of the labels. Writes benchmarks/results/owg.json and owg.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, write_results  # noqa: E402


def main(argv=None):
    from labelsky.reproduce.owg import OWGConfig

    d = OWGConfig()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=d.n_clusters, help="clusters")
    ap.add_argument("--npix", type=int, default=d.npix, help="field side in pixels (1 Mpc)")
    ap.add_argument("--backbone", default=d.backbone)
    ap.add_argument("--feature-dim", type=int, default=d.feature_dim)
    ap.add_argument("--fc-widths", type=int, nargs="+", default=d.fc_widths)
    ap.add_argument("--fractions", type=float, nargs="+", default=d.fractions)
    ap.add_argument("--folds", type=int, default=d.folds)
    ap.add_argument("--repeats", type=int, default=d.repeats)
    ap.add_argument("--protocols", nargs="+", choices=["finetune", "frozen"], default=d.protocols,
                    help="finetune: Base trained, Ours fine-tuned (the comparison); frozen: the extractor fixed")
    ap.add_argument("--pretext-epochs", type=int, default=d.pretext_epochs)
    ap.add_argument("--pretext-optimizer", choices=["adam", "sgd"], default=d.pretext_optimizer)
    ap.add_argument("--pretext-lr", type=float, default=d.pretext_lr)
    ap.add_argument("--richness-epochs", type=int, default=d.richness_epochs)
    ap.add_argument("--patience", type=int, default=d.patience, help="early stopping of the richness training "
                                                                    "(0: none, every epoch runs)")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer, help="richness optimiser")
    ap.add_argument("--lr", type=float, default=d.lr, help="richness learning rate")
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--alpha", type=float, default=d.alpha, help="weight of std(|y - y_hat|) in the loss")
    ap.add_argument("--paper", action="store_true", help="the paper's settings (OWGConfig.paper; a GPU's work); "
                                                         "the options above are ignored")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads: 2 on otherwise idle cores; with another "
                    "job on the cores 2 threads ran ~10x slower than 1")
    ap.add_argument("--work-dir", type=Path, default=None, help="default /tmp/labelsky_bench/owg (owg_quick with "
                    "--quick); the pretext run there resumes only with the same settings: other settings need another")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--name", default=None, help="result file name (default owg, owg_quick with --quick)")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from labelsky.reproduce.owg import claims_text, reference_line, run_owg, table

    if a.quick:
        rc = OWGConfig.quick(workers=a.workers)
    elif a.paper:
        rc = OWGConfig.paper(workers=a.workers)
    else:
        rc = OWGConfig(n_clusters=a.n, npix=a.npix, backbone=a.backbone, feature_dim=a.feature_dim,
                       fc_widths=a.fc_widths, fractions=a.fractions, folds=a.folds, repeats=a.repeats,
                       protocols=a.protocols, pretext_epochs=a.pretext_epochs, pretext_optimizer=a.pretext_optimizer,
                       pretext_lr=a.pretext_lr, richness_epochs=a.richness_epochs, patience=a.patience or None,
                       optimizer=a.optimizer, lr=a.lr, batch_size=a.batch_size, alpha=a.alpha, workers=a.workers)
    work_dir = a.work_dir or Path("/tmp/labelsky_bench") / ("owg_quick" if a.quick else "owg")
    with CpuMonitor() as mon:
        res = run_owg(work_dir, rc, progress=False)
    cv, pt = res["richness"], res["pretext"]
    md = [f"### Optical-wavelength-guided self-supervision on {cv['n_clusters']} simulated SDSS clusters "
          f"({rc.npix} px ugriz, 1 Mpc)\n",
          f"Pretext (band identity; clusters split 70/10/20 % into training / checkpoint choice / test): CNN accuracy "
          f"on the {pt['n_test_clusters']} test clusters ({pt['n_test_images']} images) {pt['cnn_test_accuracy']:.3f} "
          f"(on the checkpoint-choice clusters {pt['cnn_val_accuracy']:.3f}); gradient boosting on summary "
          f"statistics {pt['stats_raw_accuracy']:.3f} (raw images) and {pt['stats_normalised_accuracy']:.3f} "
          f"(normalised as the CNN sees them); chance {pt['chance']:.2f}. {rc.backbone}, {rc.pretext_epochs} epochs, "
          f"{rc.pretext_optimizer} lr {rc.pretext_lr:g}.\n",
          f"Richness, ln(lambda): {rc.folds}-fold cluster-grouped CV x {rc.repeats} repeats, mean ± std over "
          f"repeats. Base: random initialisation, Ours: the pretext extractor; both train the whole network "
          f"(rows Base / Ours) or, as extra rows, the head on a frozen extractor; features {rc.feature_dim}, FC "
          f"{rc.fc_widths}, {rc.optimizer} lr {rc.lr:g}, batch {rc.batch_size}, alpha {rc.alpha:g}, at most "
          f"{rc.richness_epochs} epochs (patience {rc.patience}); the epoch with the lowest loss on "
          f"{100 * cv['config']['val_fraction']:g} % held-out training clusters kept. Sigma = std(|y - y_hat|) "
          "(the paper's); scatter = std(y - y_hat).\n",
          table(cv, res["reference"]), "", reference_line(res["reference"]), "", claims_text(res["claims"]),
          f"\nTimings (s): {res['timings']}."]
    name = a.name or ("owg_quick" if a.quick else "owg")
    write_results(name, {"pretext": pt, "richness_summary": cv["summary"], "paired": cv["paired"],
                         "per_repeat": cv["per_repeat"], "claims": res["claims"], "reference": res["reference"],
                         "config": res["config"], "timings": res["timings"], "cpu": mon.as_dict()}, "\n".join(md))


if __name__ == "__main__":
    main()
