"""Backbones by name from timm, for any number of bands, with local weight files.

:func:`create_backbone` builds any timm architecture (``resnet18``,
``resnet50``, ``xception41``, ``efficientnet_b0``, ...) with ``num_classes=0``
(the pooled feature vector is the output) and ``in_chans`` equal to the
number of bands. Pretrained weights come from

* a local file (``.pth``/``.pt``/``.bin`` PyTorch state dict, or ``.safetensors``): loaded by
  :func:`load_backbone_weights`, which adapts the first convolution when the
  file was trained on another number of input channels (RGB ImageNet weights
  onto 5 bands, say: timm's ``adapt_input_conv``), and ignores the classifier;
* ``pretrained=True``: timm's own download (Hugging Face hub). Machines without
  internet access get a clear error asking for a local file instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from labelsky.errors import SettingsError, unreadable_reason

__all__ = ["create_backbone", "load_backbone_weights", "read_state_dict", "BackboneWeightsError",
           "backbone_blocks"]


class BackboneWeightsError(SettingsError):
    """Weights cannot be found, read or matched to the architecture."""


def read_state_dict(path: str | Path) -> dict:
    """A state dict from a local file (torch or safetensors); unwraps Lightning/timm checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"weight file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any read failure is reported with the path
        raise BackboneWeightsError(f"cannot read weight file {path} ({unreadable_reason(err)}); expected a "
                                   f"PyTorch state dict (.pth / .pt / .bin) or a .safetensors file") from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BackboneWeightsError(f"{path} does not hold a state dict of tensors")
    # strip common prefixes ("backbone.", "model.", "module.")
    for prefix in ("module.", "model.", "backbone."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def load_backbone_weights(model: nn.Module, path: str | Path) -> dict:
    """Load a local weight file into a timm backbone; returns a small report.

    The first convolution is adapted when the file's number of input channels
    differs from the model's. Classifier weights in the file are ignored. It
    is an error when fewer than half of the model's tensors are found.
    """
    from timm.models import adapt_input_conv

    sd = read_state_dict(path)
    own = model.state_dict()
    first_conv = getattr(model, "pretrained_cfg", {}).get("first_conv")
    adapted = []
    for name, tensor in list(sd.items()):
        if name in own and tensor.ndim == 4 and own[name].ndim == 4 and tensor.shape[1] != own[name].shape[1] \
                and tensor.shape[0] == own[name].shape[0]:
            if first_conv and not name.startswith(first_conv):
                continue
            in_chans = own[name].shape[1]
            if tensor.shape[1] == 3:
                sd[name] = adapt_input_conv(in_chans, tensor)
            else:  # average the channels, repeat, keep the activation scale
                sd[name] = tensor.mean(dim=1, keepdim=True).repeat(1, in_chans, 1, 1) * tensor.shape[1] / in_chans
            adapted.append(name)
    matched = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if len(matched) < 0.5 * len(own):
        raise BackboneWeightsError(
            f"{path} matches only {len(matched)} of the {len(own)} tensors of this architecture; "
            f"was it saved from another backbone?")
    missing, _ = model.load_state_dict(matched, strict=False)
    return {"file": str(path), "loaded": len(matched), "missing": list(missing), "adapted_input_conv": adapted,
            "ignored": sorted(set(sd) - set(matched))}


def create_backbone(name: str, in_chans: int, weights: str | Path | bool | None = None,
                    drop_rate: float = 0.0) -> tuple[nn.Module, dict]:
    """A timm backbone whose forward returns pooled features [N, model.num_features].

    ``weights``: ``None``/``False`` (random init), a local file path, or
    ``True`` (timm download). Returns ``(model, info)`` where ``info`` says
    which weights were used.
    """
    import timm

    if name not in timm.list_models() and not timm.is_model(name):
        raise BackboneWeightsError(f"unknown backbone {name!r}; see timm.list_models() for names")
    if weights is True:
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans, drop_rate=drop_rate)
        except Exception as err:  # noqa: BLE001
            raise BackboneWeightsError(
                f"could not fetch pretrained weights for {name!r} ({type(err).__name__}: {err}). Without internet "
                f"access, download them elsewhere and pass the local file (e.g. --weights resnet18.safetensors)"
            ) from None
        return model, {"weights": f"timm:{name}", "pretrained": True}
    model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, drop_rate=drop_rate)
    if weights:
        report = load_backbone_weights(model, weights)
        return model, {"weights": str(weights), "pretrained": True, **report}
    return model, {"weights": None, "pretrained": False}


def backbone_blocks(model: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's parameters in groups from input to output (stem, block 1, ..., head).

    Uses timm's ``group_matcher`` so that it works for every architecture;
    used for freezing and progressive unfreezing.
    """
    from timm.models import group_parameters

    matcher = model.group_matcher(coarse=True) if hasattr(model, "group_matcher") else None
    if matcher is None:
        return [list(model.parameters())]
    groups = group_parameters(model, matcher)  # {group_id: [param names]} ordered from input to output
    params = dict(model.named_parameters())
    return [[params[n] for n in names] for _, names in sorted(groups.items())]
