"""Transfer learning with progressive unfreezing, clustering and recursive training (Khan et al. 2019).

Registered as the method ``transfer``: a timm backbone + the paper's head,
trained on labelled rows of splits ``train`` / ``val`` (:func:`select_rows`);
predictions are class probabilities and the penultimate-layer embedding.
:func:`recursive_training` adds rounds with confident pseudo-labels of
unlabelled datasets.
"""

from labelsky.methods.registry import MethodSpec, register_method
from labelsky.methods.transfer.fit import fit_transfer, select_rows, train_classifier
from labelsky.methods.transfer.module import (ProgressiveUnfreezing, TransferClassifier, TransferConfig,
                                              load_classifier, unfrozen_groups)
from labelsky.methods.transfer.pseudolabel import select_pseudo_labels
from labelsky.methods.transfer.recursive import cluster_classes, recursive_training
from labelsky.training import class_balance_weights

__all__ = ["TransferConfig", "TransferClassifier", "ProgressiveUnfreezing", "unfrozen_groups", "load_classifier",
           "train_classifier", "fit_transfer", "select_rows", "select_pseudo_labels", "recursive_training", "cluster_classes", "class_balance_weights",
           "SPEC"]

SPEC = register_method(MethodSpec(
    name="transfer", config_cls=TransferConfig, module_cls=TransferClassifier, select_rows=select_rows,
    fit=fit_transfer, load=load_classifier, output="probs",
    description="timm backbone fine-tuned with progressive unfreezing (Khan et al. 2019)"))
