"""``labelsky <command>``: the command-line interface.

Commands
--------
surveys    list the survey specifications (or print one as YAML)
simulate   simulate galaxy cutouts or galaxy-cluster fields seen by several surveys
show       colour mosaics (one row per class) of a dataset or a simulation folder
import     import real data: FITS cutouts, cutouts from large FITS images, Galaxy10 HDF5, PNG / JPEG pictures
validate   list every problem of a dataset (catalog fields, image shards, bad pixels)
crossmatch match two datasets by sky position (e.g. SDSS and DES) into aligned overlap datasets
train      train a transfer-learning classifier (timm backbone, progressive unfreezing; recursive pseudo-label
           rounds with --unlabelled) into a run folder
evaluate   metrics of a trained run on a dataset split (accuracy, F1, confusion, confidence curve)
catalog    run a trained model over a whole dataset into a Parquet / FITS catalog (resumable)
cluster    t-SNE / UMAP map and k-means / HDBSCAN clusters of a run's embeddings of a dataset, named by class
adapt      universal domain adaptation (DeepAstroUDA, DANCE, source-only) with unknown-class detection
semisup    semi-supervised vote fractions with the Equivariant-Transformer VAE (three regimes)
pretrain   self-supervised pretext training on band images (which band / which colour order)
richness   cluster richness from band images, cross-validated, random vs pretext-pretrained extractor
reproduce  reproduce a paper on the simulator (khan2019, deepastrouda, etvae, owg)
demo       the embedded default end to end: simulate, train, evaluate, cluster, catalog
"""

from __future__ import annotations

import argparse
import sys

from labelsky.cli import cluster, data, predict, reproduce, train
from labelsky.cli.options import OneLineParser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from labelsky import __version__

    parser = OneLineParser(prog="labelsky",
                                     description="labelsky: galaxy morphology, anomaly and cluster-richness catalogs "
                                                 "from few labels and many survey images.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"labelsky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    data.add_surveys(sub)
    data.add_simulate(sub)
    data.add_show(sub)
    data.add_crossmatch(sub)
    data.add_import(sub)
    data.add_validate(sub)
    train.add_train(sub)
    predict.add_evaluate(sub)
    predict.add_catalog(sub)
    cluster.add_cluster(sub)
    train.add_adapt(sub)
    train.add_semisup(sub)
    train.add_pretrain(sub)
    train.add_richness(sub)
    reproduce.add_reproduce(sub)
    reproduce.add_demo(sub)
    return parser


def main(argv=None) -> int:
    """Run one command; every error a user can cause prints one line and returns 2."""
    from labelsky.errors import LabelskyError, one_line

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) or a usage mistake (2, its one line already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except LabelskyError as err:
        print(f"labelsky: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused: a path under a file, a read-only or full disk, ...
        print(f"labelsky: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labelsky: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
