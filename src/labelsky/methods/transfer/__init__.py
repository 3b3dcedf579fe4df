"""Transfer learning with progressive unfreezing, clustering and recursive training (Khan et al. 2019).

Registered as the method ``transfer`` (command ``labelsky train``): a timm
backbone + the paper's head, trained on labelled rows of splits ``train`` /
``val`` of the ``--data`` datasets; with ``--unlabelled`` datasets, recursive
rounds add confident pseudo-labels (:mod:`.recursive`). Predictions are class
probabilities and the penultimate-layer embedding.
"""

from labelsky.methods.lazy import lazy_exports
from labelsky.methods.registry import DataRole, MethodSpec, register_method
from labelsky.methods.transfer.config import TransferConfig

__all__ = ["TransferConfig", "TransferClassifier", "ProgressiveUnfreezing", "unfrozen_groups", "fit", "select_rows",
           "select_pseudo_labels", "cluster_classes", "cluster_map", "recursive_training", "SPEC"]

__getattr__ = lazy_exports(__name__, {
    "TransferClassifier": "module", "ProgressiveUnfreezing": "module", "unfrozen_groups": "module", "fit": "method",
    "select_rows": "method", "select_pseudo_labels": "pseudolabel", "cluster_classes": "recursive",
    "cluster_map": "recursive", "recursive_training": "recursive"})


def _smoke(device: str) -> TransferConfig:
    return TransferConfig(backbone="resnet10t", hidden=[8], max_epochs=1, batch_size=8, augment=False, seed=0,
                          device=device)


SPEC = register_method(MethodSpec(
    name="transfer", command="train", config_cls=TransferConfig, output="probs",
    model="labelsky.methods.transfer.module:TransferClassifier", implementation="labelsky.methods.transfer.method",
    inputs=(DataRole("data", "dataset folder(s); rows of split 'train' with a label >= 0 train, split 'val' "
                             "validates", many=True),
            DataRole("unlabelled", "dataset folder(s) whose every row may be pseudo-labelled (their labels are never "
                                   "used); the run gets round_0 ... round_R, rounds.json, and the final model",
                     many=True, required=False)),
    smoke=_smoke,
    description="train a transfer-learning classifier into a run folder (timm backbone, progressive unfreezing; "
                "recursive pseudo-label rounds with --unlabelled)"))
