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
           (train, adapt, semisup, pretrain, richness: one command per registered method, generated from its spec)
evaluate   metrics of a trained run on a dataset split (classifiers: accuracy, F1, confusion, confidence curve;
           vote fractions: RMSE; regressions: MAE, Sigma) and its domain gap to a reference dataset
catalog    run a trained model over a whole dataset into a Parquet / FITS catalog (resumable)
browse     a static web site of a catalog (mosaics by class and confidence, uncertain, unknown, vote tree,
           a page per galaxy) that opens from file://
cluster    t-SNE / UMAP map and k-means / HDBSCAN clusters of a run's embeddings of a dataset (named by class
           when the run predicts classes)
adapt      universal domain adaptation (DeepAstroUDA, DANCE, source-only) with unknown-class detection
semisup    semi-supervised vote fractions with the Equivariant-Transformer VAE (three regimes)
pretrain   self-supervised pretext training on band images (which band / which colour order)
richness   cluster richness from band images, cross-validated, random vs pretext-pretrained extractor
reproduce  reproduce a paper on the simulator (khan2019, deepastrouda, etvae, owg)
demo       the embedded default end to end: simulate, train, evaluate, cluster, catalog
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from labelsky.cli import cluster, data, methods, predict, reproduce
from labelsky.cli.options import OneLineParser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from labelsky._version import __version__

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
    methods.add_method_commands(sub)  # train, adapt, semisup, pretrain, richness: one per registered method
    predict.add_evaluate(sub)
    predict.add_catalog(sub)
    predict.add_browse(sub)
    cluster.add_cluster(sub)
    reproduce.add_reproduce(sub)
    reproduce.add_demo(sub)
    return parser


class _StderrHandler(logging.Handler):
    """The ``labelsky`` logger's notes as ``labelsky: <message>`` on the current standard error."""

    def emit(self, record):
        try:
            print(f"labelsky: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging never raises
            self.handleError(record)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from labelsky.errors import LabelskyWarning

    if issubclass(category, LabelskyWarning):
        print(f"labelsky: warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _report_to_stderr() -> None:
    """The library's notes (``logging``) and warnings (:class:`~labelsky.errors.LabelskyWarning`) as one line
    each on standard error."""
    from labelsky.errors import LabelskyWarning

    log = logging.getLogger("labelsky")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
    warnings.simplefilter("always", LabelskyWarning)
    warnings.showwarning = _show_warning


def _os_error(err: OSError) -> str:
    """An OSError as one line a user reads: what the system said, the path, and what to do on a full disk."""
    from labelsky.errors import disk_full, one_line

    where = f": {err.filename}" if err.filename else ""
    if disk_full(err):  # the system's own words ("[Errno 28] ...", a library's "Detail: ...") add nothing
        return (f"the disk is full{where}; free space and rerun the same command: what was written before is kept "
                f"and the command resumes")
    return f"{err.strerror or one_line(err)}{where}"


def _close_progress_bars() -> None:
    """Close the progress bars still open (tqdm's and Lightning's), so that an error starts on a line of its own."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error itself
            pass


def main(argv=None) -> int:
    """Run one command; every error a user can cause prints one line and returns 2."""
    from labelsky.errors import LabelskyError, one_line

    _report_to_stderr()
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
        _close_progress_bars()
        print(f"labelsky: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused: a path under a file, a read-only or full disk, ...
        _close_progress_bars()
        print(f"labelsky: error: {_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("labelsky: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        from labelsky.outputs import finish_outputs

        finish_outputs()  # each output folder's manifest: the files this command wrote


if __name__ == "__main__":
    sys.exit(main())
