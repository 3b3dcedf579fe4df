"""Benchmark: ``labelsky reproduce owg`` (Liang et al.) on simulated SDSS ugriz cluster fields, ~1 h on 2 CPU cores.

Pretext (band identity) accuracy of the CNN against summary-statistics classifiers; richness (ln lambda) MAE and
Sigma for Base (random init) vs Ours (pretext extractor) at several fractions of the training data, cluster-grouped
cross-validation with repeats. To fit a CPU hour the extractor is frozen (the paper allows fixed or fine-tuned),
its features are 64 wide and the head's FC layers 256 and 64 (paper: 512; 1024, 512); the conv layers are the
paper's. The paper's claims to test: Ours beats Base in MAE and Sigma at every fraction, most at small fractions,
and matches Base-at-100 % with <= 60 % of the labels. Writes benchmarks/results/owg.json and owg.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CpuMonitor, write_results  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=600, help="clusters")
    ap.add_argument("--npix", type=int, default=64)
    ap.add_argument("--feature-dim", type=int, default=64)
    ap.add_argument("--fc-widths", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pretext-epochs", type=int, default=15)
    ap.add_argument("--richness-epochs", type=int, default=40)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/labelsky_bench/owg"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from labelsky.reproduce.owg import OWGConfig, _reference_line, _table, run_owg

    rc = (OWGConfig.quick(workers=a.workers) if a.quick else
          OWGConfig(n_clusters=a.n, npix=a.npix, feature_dim=a.feature_dim, fc_widths=a.fc_widths,
                    fractions=a.fractions, folds=a.folds, repeats=a.repeats, pretext_epochs=a.pretext_epochs,
                    richness_epochs=a.richness_epochs, workers=a.workers))
    with CpuMonitor() as mon:
        res = run_owg(a.work_dir, rc, progress=False)
    cv, pt, cl = res["richness"], res["pretext"], res["claims"]
    md = [f"### Optical-wavelength-guided self-supervision on {cv['n_clusters']} simulated SDSS clusters "
          f"({rc.npix} px ugriz, 1 Mpc)\n",
          f"Pretext (band identity, cluster-grouped 4:1 split, {pt['n_test_images']} test images): CNN accuracy "
          f"{pt['cnn_test_accuracy']:.3f}; gradient boosting on summary statistics {pt['stats_raw_accuracy']:.3f} "
          f"(raw images) and {pt['stats_normalised_accuracy']:.3f} (normalised as the CNN sees them); chance "
          f"{pt['chance']:.2f}.\n",
          f"Richness, ln(lambda): {rc.folds}-fold cluster-grouped CV x {rc.repeats} repeats, mean ± std over "
          f"repeats; extractor {'frozen' if rc.freeze_extractor else 'fine-tuned'}, features {rc.feature_dim}, "
          f"FC {rc.fc_widths}; the epoch with the lowest loss on {100 * cv['config']['val_fraction']:g} % "
          "held-out training clusters kept.\n",
          _table(cv), "", _reference_line(res["reference"]), "",
          "Ours - Base (negative = pretrained better): MAE " + ", ".join(
              f"{100 * float(q):g} %: {v:+.4f}" for q, v in cl["mae_ours_minus_base"].items()),
          "\nSigma " + ", ".join(f"{100 * float(q):g} %: {v:+.4f}" for q, v in cl["sigma_ours_minus_base"].items()),
          f"\n\nOurs better at every fraction: MAE {cl['mae_ours_better_everywhere']}, Sigma "
          f"{cl['sigma_ours_better_everywhere']}. Smallest fraction where Ours matches Base at 100 %: MAE "
          f"{cl['mae_smallest_fraction_ours_matches_base_at_100']}, Sigma "
          f"{cl['sigma_smallest_fraction_ours_matches_base_at_100']}.",
          f"\nTimings (s): {res['timings']}."]
    write_results("owg_quick" if a.quick else "owg", {"pretext": pt, "richness_summary": cv["summary"],
                                                      "per_repeat": cv["per_repeat"], "claims": cl,
                                                      "reference": res["reference"],
                                                      "config": res["config"], "timings": res["timings"],
                                                      "cpu": mon.as_dict()}, "\n".join(md))


if __name__ == "__main__":
    main()
