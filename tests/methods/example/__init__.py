"""probe: a linear probe on a timm backbone, the example method of docs/architecture.md (its whole package)."""

from dataclasses import dataclass

from labelsky.methods.registry import DataRole, MethodSpec, register_method
from labelsky.methods.settings import InputSettings, TrainSettings, setting


@dataclass
class ProbeConfig(TrainSettings, InputSettings):
    backbone: str = setting("resnet10t", help="any timm model name")
    max_epochs: int = 5


SPEC = register_method(MethodSpec(
    name="probe", command="probe", config_cls=ProbeConfig, output="probs",
    model=f"{__name__}.method:ProbeModule", implementation=f"{__name__}.method",
    inputs=(DataRole("data", "labelled dataset (split train)"),),
    smoke=lambda device: ProbeConfig(max_epochs=1, batch_size=8, device=device),
    description="a linear probe on a timm backbone (the example method of docs/architecture.md)"))
