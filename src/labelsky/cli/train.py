"""Training commands, one per registered method: train, adapt, semisup, pretrain, richness."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labelsky.cli.options import (add_device, add_distributed, add_overwrite, add_render, add_seed, at_least_2,
                                  dist, fraction, non_negative_int, positive_float, positive_int, rank_zero,
                                  render_settings)
from labelsky.errors import SettingsError
from labelsky.methods.registry import get_method


def add_train(sub):
    p = sub.add_parser("train", help="train a transfer-learning classifier into a run folder")
    p.add_argument("--data", nargs="+", required=True, type=Path, help="dataset folder(s); rows of split "
                   "'train' with a label >= 0 train, split 'val' validates")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--backbone", default="xception41", help="any timm model name (default: the paper's Xception; "
                   "resnet18 is ~8x faster on a CPU)")
    p.add_argument("--weights", default=None, help="local weight file, or 'timm' to download (needs internet)")
    p.add_argument("--bands", nargs="+", default=None, help="band names to use (default: all)")
    p.add_argument("--stretch", choices=["asinh", "khan", "standardize", "none"], default="asinh",
                   help="asinh (survey noise), khan ([-1, 1] per image), standardize (per band), none")
    p.add_argument("--mask-channel", action="store_true", help="add a bad-pixel channel (imported data)")
    add_render(p)
    p.add_argument("--image-size", type=int, default=None, help="resize to this side (e.g. 224)")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--head-epochs", type=non_negative_int, default=2, help="epochs of head-only training first")
    p.add_argument("--unfreeze-every", type=positive_int, default=2, help="epochs between unfreezing steps")
    p.add_argument("--unfreeze-groups", type=positive_int, default=1, help="backbone groups unfrozen per step; with "
                   "--head-epochs 0 and a number >= the groups (e.g. 100) every group trains from the first epoch, "
                   "as from random initialisation (weak weights, e.g. of labelsky pretrain)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--patience", type=non_negative_int, default=5, help="early stopping on validation loss")
    g = p.add_argument_group("recursive training with pseudo-labels (Khan et al. 2019)")
    g.add_argument("--unlabelled", nargs="+", type=Path, default=None,
                   help="dataset folder(s) whose every row may be pseudo-labelled (their labels are never used); "
                        "the run gets round_0 ... round_R, rounds.json, and the final model")
    g.add_argument("--rounds", type=non_negative_int, default=None,
                   help="pseudo-labelling rounds after round 0 (default with --unlabelled: 1)")
    g.add_argument("--k-per-class", type=positive_int, default=1000,
                   help="pseudo-labels per class and round, the most confident (default 1000, the paper's)")
    g.add_argument("--min-confidence", type=fraction, default=0.9,
                   help="least confidence of a pseudo-label; also the threshold of the confident fraction "
                        "(default 0.9)")
    g.add_argument("--cluster-filter", action="store_true",
                   help="keep only pseudo-labels whose t-SNE + k-means cluster has the same class")
    add_seed(p)
    add_device(p)
    add_overwrite(p)
    add_distributed(p)
    p.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.methods.transfer import TransferConfig, select_rows, train_classifier

    datasets = [open_dataset(p) for p in a.data]
    parts = select_rows(datasets, seed=a.seed)
    if not parts["val"]:
        print("labelsky: no 'val' split: checkpoints and early stopping follow the training loss", file=sys.stderr)
    cfg = TransferConfig(backbone=a.backbone, weights=a.weights, bands=a.bands, stretch=a.stretch,
                         mask_channel=a.mask_channel, image_size=a.image_size, max_epochs=a.epochs,
                         head_epochs=a.head_epochs, unfreeze_groups=a.unfreeze_groups,
                         unfreeze_every=a.unfreeze_every, batch_size=a.batch_size, lr=a.lr, patience=a.patience,
                         seed=a.seed, device=a.device, num_workers=a.workers, **render_settings(a), **dist(a))
    if a.unlabelled is None:
        if a.rounds is not None or a.cluster_filter:
            raise SettingsError("--rounds and --cluster-filter need --unlabelled DATA (the datasets to pseudo-label)")
        model = train_classifier(a.out, parts["train"], parts["val"], datasets[0].classes, cfg,
                                 overwrite=a.overwrite)
        if not rank_zero():
            return 0
        print(f"trained {cfg.backbone} ({model.weights_info.get('weights') or 'random init'}) -> "
              f"{a.out / 'checkpoints' / 'best.ckpt'}")
        _warn_head_only(a)
        return 0
    if dist(a)["devices"] not in (None, 1) or a.num_nodes != 1:
        raise SettingsError("recursive training (--unlabelled) runs on one device")
    from labelsky.methods.transfer import recursive_training

    pool = [open_dataset(p) for p in a.unlabelled]
    _, report = recursive_training(a.out, parts, pool, cfg, rounds=1 if a.rounds is None else a.rounds,
                                   k_per_class=a.k_per_class, min_confidence=a.min_confidence,
                                   cluster_filter=a.cluster_filter, overwrite=a.overwrite)
    for e in report["rounds"]:
        added = ", ".join(f"{c} {n}" for c, n in e["pseudo_labels"]["per_class"].items())
        print(f"round {e['round']}: pseudo-labels {e['pseudo_labels']['n']} ({added}); "
              f"confident fraction {e['confident_fraction']:.3f} (>= {a.min_confidence:g}), "
              f"mean confidence {e['mean_confidence']:.3f}")
        if e["round"] > 0 and e["pseudo_labels"]["n"] == 0:
            print(f"labelsky: warning: round {e['round']} had no pseudo-label (no unlabelled galaxy reached "
                  f"--min-confidence {a.min_confidence:g}; the most confident: "
                  f"{e['pseudo_labels'].get('max_confidence', float('nan')):.3f}), so it trained on the labelled "
                  f"data alone, as round 0 did; lower --min-confidence or train round 0 longer", file=sys.stderr)
    print(f"trained {len(report['rounds'])} round(s) of {cfg.backbone} -> {a.out} (final: "
          f"{a.out / 'checkpoints' / 'best.ckpt'}; {a.out / 'rounds.json'})")
    _warn_head_only(a)
    return 0


def _warn_head_only(a) -> None:
    """Random initial weights and no epoch past the head-only ones: the backbone never trained."""
    if not a.weights and a.epochs <= a.head_epochs:
        print(f"labelsky: warning: with random initial weights and --epochs {a.epochs} <= --head-epochs "
              f"{a.head_epochs}, only the head trained, on frozen random features; to train from scratch pass "
              f"--head-epochs 0 --unfreeze-groups 100", file=sys.stderr)


def add_adapt(sub):
    p = sub.add_parser("adapt", help="universal domain adaptation from a labelled source to an unlabelled target")
    p.add_argument("--source", required=True, type=Path, help="labelled source dataset (splits train / val)")
    p.add_argument("--target", required=True, type=Path, help="target dataset (labels, if any, only for evaluation)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--method", default="deepastrouda",
                   help="a variant of the registered method 'uda': deepastrouda (default), dance, source_only")
    p.add_argument("--known", nargs="+", default=None, help="known (source) classes; default: all source classes")
    p.add_argument("--backbone", default="resnet50", help="any timm name (paper: ResNet-50 from scratch)")
    p.add_argument("--weights", default=None, help="local weight file for the backbone")
    p.add_argument("--bands", nargs="+", default=None)
    p.add_argument("--stretch", choices=["asinh", "khan", "standardize", "none"], default="asinh")
    p.add_argument("--noise-survey", default=None, help="asinh softening from this survey's noise for both domains "
                                                       "(default: each dataset's own survey)")
    p.add_argument("--mask-channel", action="store_true", help="add a bad-pixel channel (imported data)")
    add_render(p)
    p.add_argument("--image-size", type=int, default=None, help="resize both domains to this side (pictures of "
                   "another size than the simulation, e.g. 48)")
    p.add_argument("--epochs", type=positive_int, default=40)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--no-tuner", dest="tuner", action="store_false", help="hold rho and m fixed")
    p.add_argument("--no-ac", dest="ac", action="store_false",
                   help="ablation: without the adaptation term (AC for deepastrouda, NC for dance)")
    p.add_argument("--no-es", dest="es", action="store_false", help="ablation: without entropy separation")
    p.add_argument("--rank-on", choices=["probs", "features"], default="probs",
                   help="deepastrouda: similarity labels of target pairs from ordered top-k class probabilities "
                        "(the paper) or from top-k feature dimensions")
    p.add_argument("--dsbn", action=argparse.BooleanOptionalAction, default=None,
                   help="domain-specific batch norm (default: on for deepastrouda, off for dance / source_only; "
                        "off = one shared batch norm, separate forward passes)")
    add_seed(p)
    add_device(p)
    add_overwrite(p)
    add_distributed(p)
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.methods.uda.module import UDAConfig
    from labelsky.methods.uda.run import adapt

    variants = get_method("uda").variants
    if a.method not in variants:
        raise SettingsError(f"--method {a.method!r}: expected one of {', '.join(variants)}")
    src, tgt = open_dataset(a.source), open_dataset(a.target)
    known = a.known or list(src.classes)
    cfg = UDAConfig(method=a.method, backbone=a.backbone, weights=a.weights, bands=a.bands, max_epochs=a.epochs,
                    stretch=a.stretch, noise_survey=a.noise_survey, mask_channel=a.mask_channel,
                    image_size=a.image_size,
                    batch_size=a.batch_size, lr=a.lr, tuner=a.tuner, dsbn=a.dsbn, ac=a.ac, es=a.es,
                    rank_on=a.rank_on, seed=a.seed, device=a.device,
                    num_workers=a.workers, **render_settings(a), **dist(a))
    _, reports = adapt(a.out, src, tgt, known, cfg, overwrite=a.overwrite)
    if not rank_zero():
        return 0
    for name in ("source_test", "target_test"):
        if name in reports:
            r = reports[name]
            known = f" closed-set accuracy={r['closed_set_accuracy']:.4f}" if "closed_set_accuracy" in r else ""
            print(f"{name}: n={r['n']} accuracy={r['accuracy']:.4f}{known} F1={r['f1']:.4f} "
                  f"unknown accuracy={_metric(r['unknown_accuracy'])} AUROC={_metric(r['auroc'])}")
    if "target_test" not in reports:
        print("target: no labelled test rows; the domain gap below is the measure without target labels")
    gap = reports.get("domain_gap")
    if gap and "error" in gap:
        print(f"domain gap: not measured ({gap['error']})")
    elif gap:
        from labelsky.evaluate.domain_gap import gap_line

        print("domain gap (a classifier telling target from source embeddings):")
        print(f"  before training: {gap_line(gap['before'])}")
        print(f"  after training:  {gap_line(gap['after'])}; figures: {a.out / 'figures'}")
    print(f"run: {a.out}; metrics: {a.out / 'eval.json'}")
    return 0


def _metric(value) -> str:
    """A metric for printing; ``n/a`` where it is undefined (e.g. the unknown-class metrics of rows without
    an unknown class)."""
    return "n/a" if value is None or value != value else f"{value:.4f}"


def add_semisup(sub):
    p = sub.add_parser("semisup", help="semi-supervised vote fractions with the Equivariant-Transformer VAE")
    p.add_argument("--data", required=True, type=Path, help="dataset with Galaxy Zoo votes (votes_* columns)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder")
    p.add_argument("--regime", choices=["supervised", "semi", "two_step"], default="semi")
    p.add_argument("--labels", type=positive_int, default=None, help="label budget: use only this many labelled "
                   "(voted) training galaxies; the rest of the training split is unlabelled")
    p.add_argument("--selection", choices=["budget", "split"], default=None,
                   help="with --labels, select the model on --val-fraction of the budget (budget, default) or on "
                        "the voted galaxies of split 'val' (split: more labels than the budget)")
    p.add_argument("--val-fraction", type=fraction, default=None, help="with --labels: share of the label budget "
                   "that selects the model and stops training (default 0.2)")
    p.add_argument("--steps-per-epoch", type=positive_int, default=None, help="classifier updates per epoch, "
                   "the same in every regime (default: one pass over the unlabelled galaxies)")
    p.add_argument("--optimisers", choices=["separate", "shared"], default="separate",
                   help="semi: an Adam for each loss (default) or one for both")
    p.add_argument("--no-et", dest="et", action="store_false", help="without the Equivariant Transformer layers")
    p.add_argument("--likelihood", choices=["multinomial", "dirichlet_multinomial"], default="multinomial")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--head-on", choices=["latent", "features"], default="latent")
    p.add_argument("--bands", nargs="+", default=None)
    p.add_argument("--image-size", type=int, default=None, help="resize to this side (a multiple of 8)")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--pretrain-epochs", type=positive_int, default=10, help="two_step: VAE epochs")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    add_render(p)
    add_seed(p)
    add_device(p)
    add_overwrite(p)
    add_distributed(p)
    p.set_defaults(func=cmd_semisup)


def cmd_semisup(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.methods.semisup import SemiSupConfig, fit_semisup, predict_votes, select_rows, vote_rmse
    from labelsky.utils import atomic_write_json

    if a.labels is None:
        given = [o for o, v in (("--selection", a.selection), ("--val-fraction", a.val_fraction)) if v is not None]
        if given:
            raise SettingsError(f"{' and '.join(given)} only apply with --labels N (a label budget); without it "
                                f"the model is selected on the voted galaxies of split 'val'")
    selection = a.selection or "budget"
    val_fraction = 0.2 if a.val_fraction is None else a.val_fraction
    ds = open_dataset(a.data)
    parts = select_rows([ds], labels=a.labels, seed=a.seed, selection=selection, val_fraction=val_fraction)
    labelled, pool, val, test = (parts[k][1] for k in ("labelled", "unlabelled", "val", "test"))
    cfg = SemiSupConfig(regime=a.regime, latent_dim=a.latent_dim, et_groups=["translation", "rotation_scale"]
                        if a.et else [], likelihood=a.likelihood, head_on=a.head_on, bands=a.bands,
                        image_size=a.image_size, max_epochs=a.epochs, pretrain_epochs=a.pretrain_epochs,
                        batch_size=a.batch_size, lr=a.lr, seed=a.seed, device=a.device, num_workers=a.workers,
                        steps_per_epoch=a.steps_per_epoch, optimisers=a.optimisers, **render_settings(a), **dist(a))
    model = fit_semisup(a.out, ds, labelled, pool, val, cfg, overwrite=a.overwrite)
    if not rank_zero():
        return 0
    report = {"n_labelled": int(len(labelled)), "n_val": int(len(val)), "n_unlabelled": int(len(pool)),
              "n_test": int(len(test)), "selection": selection if a.labels else "split",
              "vote_updates": int(model.n_vote_updates), "elbo_updates": int(model.n_elbo_updates)}
    if len(test):
        pred = predict_votes(model, ds, test)
        report["test_rmse"] = vote_rmse(pred["fractions"], pred["counts"])
        print(f"test: {len(test)} galaxies, RMSE of vote fractions {report['test_rmse']:.4f}")
    atomic_write_json(a.out / "eval.json", report)
    print(f"run: {a.out}; figures: {a.out / 'figures'}")
    return 0


def add_pretrain(sub):
    p = sub.add_parser("pretrain", help="self-supervised pretext training: which band / which colour order")
    p.add_argument("--data", required=True, type=Path, help="multi-band dataset (no labels needed)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder (extractor.pt for later use)")
    p.add_argument("--task", choices=["bands", "channel-order"], default="bands")
    p.add_argument("--bands", nargs="+", default=None, help="bands: the bands to use; channel-order: three bands")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--weights", default=None, help="local weight file for the backbone")
    p.add_argument("--feature-dim", type=int, default=512)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--baseline", action="store_true", help="also score a summary-statistics classifier")
    add_seed(p)
    add_device(p)
    add_overwrite(p)
    add_distributed(p)
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(a) -> int:
    import json

    from labelsky.data.io import open_dataset
    from labelsky.methods.selfsup.pretext import PretextConfig, fit_pretext, select_rows, statistics_baseline
    from labelsky.utils import atomic_write_json

    ds = open_dataset(a.data)
    parts = select_rows([ds], seed=a.seed)
    tr, va, te = parts["train"][1], parts["val"][1], parts["test"][1]
    task = "bands" if a.task == "bands" else "channel_order"
    cfg = PretextConfig(task=task, backbone=a.backbone, weights=a.weights, feature_dim=a.feature_dim,
                        bands=a.bands if task == "bands" else None, rgb_bands=a.bands if task != "bands" else None,
                        image_size=a.image_size, max_epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                        device=a.device, num_workers=a.workers, **dist(a))
    fit_pretext(a.out, ds, tr, va, cfg, overwrite=a.overwrite, test_rows=te)
    if not rank_zero():
        return 0
    report = {"n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te))}
    test = json.loads((a.out / "test.json").read_text()) if (a.out / "test.json").is_file() else None
    if test is not None:
        report["test_accuracy"] = test["accuracy"]
        print(f"pretext accuracy on {len(te)} test object(s) (not used in training or checkpoint choice): "
              f"{test['accuracy']:.3f} (chance {test['chance']:.3f})")
    if a.baseline and task == "bands":
        from labelsky.data.transforms import Preprocess

        report["stats_raw_accuracy"] = statistics_baseline(ds, tr, te, seed=a.seed)
        report["stats_normalised_accuracy"] = statistics_baseline(
            ds, tr, te, Preprocess([0], noise=[1.0], stretch=cfg.stretch, softening=cfg.softening), seed=a.seed)
        print(f"summary-statistics classifier: raw {report['stats_raw_accuracy']:.3f}, "
              f"normalised {report['stats_normalised_accuracy']:.3f}")
    atomic_write_json(a.out / "eval.json", report)
    print(f"run: {a.out}; extractor weights: {a.out / 'extractor.pt'}")
    return 0


def add_richness(sub):
    p = sub.add_parser("richness", help="cluster richness from band images: cross-validated Base vs pretrained")
    p.add_argument("--data", required=True, type=Path, help="cluster dataset (richness and cluster_id columns)")
    p.add_argument("--out", "-o", required=True, type=Path, help="run folder: the model of every cluster, and "
                                                                 "results.json of the cross-validation")
    p.add_argument("--extractor", type=Path, default=None, help="extractor.pt of `labelsky pretrain` (Ours)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--feature-dim", type=int, default=512)
    p.add_argument("--fc-widths", type=int, nargs="+", default=[1024, 512])
    p.add_argument("--freeze", action="store_true", help="keep the extractor fixed (only the head trains)")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of std(|y - y_hat|) in the loss")
    p.add_argument("--fractions", type=fraction, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.5, 1.0])
    p.add_argument("--folds", type=at_least_2, default=10)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    add_seed(p)
    add_overwrite(p)
    p.set_defaults(func=cmd_richness)


def cmd_richness(a) -> int:
    from labelsky.data.io import open_dataset
    from labelsky.methods.selfsup.richness import (RichnessConfig, cross_validate, fit_richness,
                                                   load_extractor_state, select_rows)
    from labelsky.utils import atomic_write_json

    ds = open_dataset(a.data)
    select_rows([ds])  # the dataset's columns are checked before any work
    state = load_extractor_state(a.extractor) if a.extractor else None
    cfg = RichnessConfig(backbone=a.backbone, feature_dim=a.feature_dim, fc_widths=a.fc_widths, alpha=a.alpha,
                         freeze_extractor=a.freeze, epochs=a.epochs, lr=a.lr, seed=a.seed)
    # the run: one model on every cluster (for labelsky catalog); then the cross-validated Base vs Ours
    fit_richness(a.out, [ds], cfg, extractor=a.extractor, overwrite=a.overwrite)
    res = cross_validate(ds, cfg, fractions=tuple(a.fractions), folds=a.folds, repeats=a.repeats, pretrained=state)
    res["extractor"] = str(a.extractor) if a.extractor else None
    atomic_write_json(a.out / "results.json", res)
    for model in res["summary"]:
        for q in a.fractions:
            c = res["summary"][model][str(q)]
            print(f"{model} {100 * q:g} %: MAE {c['mae']['mean']:.4f} ± {c['mae']['std']:.4f}, "
                  f"Sigma {c['sigma']['mean']:.4f} ± {c['sigma']['std']:.4f}, "
                  f"scatter {c['scatter']['mean']:.4f} ± {c['scatter']['std']:.4f}")
    print(f"results: {a.out / 'results.json'}; model: {a.out / 'checkpoints' / 'best.ckpt'}")
    return 0
