"""Settings of methods, declared once: each field carries its command-line option.

Every method's config is a dataclass built from the shared groups below plus
its own fields. A field made with :func:`setting` declares how the command
line offers it (``help``, ``flag``, ``choices``, a ``check`` of the value,
``parse`` for text the library reads itself); ``labelsky.cli`` generates each
training command's options from these declarations, so an option, its help
and its default exist once. A subclass may re-declare a field with another
default (``max_epochs: int = 40``); its option is then found on the parent
(:meth:`Settings.option_of`).

``resumable`` fields say how long, where and how fast a run trains, or what is
reported after it, not what it learns: a run folder resumes when only they
change (:class:`labelsky.methods.run.Run`).

Groups: :class:`RunSettings` (seed, device, loaders, several devices),
:class:`InputSettings` (what a network receives: bands, stretch, size,
rendering), :class:`TrainSettings` (learning rate, batch, epochs, patience).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from labelsky.data.io import LabelskyDataset
from labelsky.data.stretches import STRETCHES
from labelsky.errors import SettingsError

__all__ = ["Settings", "setting", "RunSettings", "InputSettings", "TrainSettings", "make_preprocess",
           "devices_setting", "STRETCHES"]

#: the value checks an option may name (``check=``); the command line turns each into an argparse type
CHECKS = ("positive_int", "non_negative_int", "positive_float", "fraction", "at_least_2", "percent")


def setting(default: Any = None, *, help: str | None = None, flag: str | None = None, choices=None,
            check: str | None = None, parse: Callable[[str], Any] | None = None, nargs: str | None = None,
            metavar: str | None = None, negate: bool = False, const: Any = dataclasses.MISSING,
            optional: bool = False, group: str | None = None, resumable: bool = False) -> Any:
    """A dataclass field with its command-line option.

    Parameters
    ----------
    default
        The default (lists and dicts are copied for every instance).
    help
        The option's help; a field without help has no option.
    flag
        The option (default ``--name-with-dashes``).
    choices, check, parse, nargs, metavar
        What the option accepts: a list of values; one of :data:`CHECKS`; a
        library function turning the text into the value (e.g. a grammar);
        ``"+"`` for a list; the placeholder in help.
    negate
        A ``True`` default switched off by ``--no-<name>`` (or ``flag``).
    const
        The option takes no value and sets this one (e.g. ``--no-et`` sets ``[]``).
    optional
        A boolean that may be left unset (``None``): ``--x`` / ``--no-x``.
    group
        The option group in ``--help``.
    resumable
        The setting may change when a run resumes (it does not change what the run learns).
    """
    meta = {"help": help, "flag": flag, "choices": choices, "check": check, "parse": parse, "nargs": nargs,
            "metavar": metavar, "negate": negate, "const": const, "optional": optional, "group": group,
            "resumable": resumable}
    if check is not None and check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; expected one of {CHECKS}")
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class Settings:
    """A method's settings: ``to_dict`` / ``from_dict``, checks, and the options of its fields."""

    #: old field name -> new name, for configs stored by earlier versions
    RENAMED = {}

    def __post_init__(self):
        for klass in reversed(type(self).__mro__):  # every group checks its own fields, parents first
            check = klass.__dict__.get("_check")
            if check is not None:
                check(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True):
        """Settings from a dict (e.g. ``config.json``); ``strict``: an unknown field is a :class:`SettingsError`
        (otherwise left out: a checkpoint of an older version)."""
        d = {cls.RENAMED.get(k, k): v for k, v in dict(d).items()}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown and strict:
            raise SettingsError(f"unknown {cls.__name__} setting(s) {unknown}; known: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def option_of(cls, name: str) -> dict:
        """The option metadata of field ``name``: its own, else the nearest parent's that declares one."""
        for klass in cls.__mro__:
            f = getattr(klass, "__dataclass_fields__", {}).get(name)
            if f is not None and f.metadata.get("help"):
                return dict(f.metadata)
        return {}

    @classmethod
    def resumable_fields(cls) -> frozenset:
        """Names of the settings that may change when a run resumes."""
        return frozenset(f.name for f in dataclasses.fields(cls) if cls.option_of(f.name).get("resumable")
                         or f.metadata.get("resumable"))

    @classmethod
    def defaults(cls) -> dict:
        """Every field's default (what a config stored before the field existed stands for)."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out


def devices_setting(text: str):
    """``--devices``: a count or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"--devices must be a count or 'auto', got {text!r}") from None


@dataclass
class RunSettings(Settings):
    """Where and how a run trains: seed, device, loader processes, several devices or nodes (Lightning)."""

    seed: int = setting(0, help="random seed (default 0)")
    device: str = setting("auto", help="auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:1 ...",
                          resumable=True)
    num_workers: int = setting(0, flag="--workers", check="non_negative_int", help="data-loader processes",
                               resumable=True)
    # devices per node (None: one; a count, or "auto" for all GPUs), nodes, and strategy ("ddp": data-parallel;
    # CPU processes talk over gloo, GPUs over NCCL)
    devices: int | str | None = setting(None, parse=devices_setting, group="several devices or nodes (Lightning)",
                                        help="devices per node: a count (CPU processes or GPUs), or 'auto' "
                                             "(default: one)", resumable=True)
    num_nodes: int = setting(1, check="positive_int", group="several devices or nodes (Lightning)",
                             help="nodes (launch one process per node, e.g. with torchrun or SLURM's srun)",
                             resumable=True)
    strategy: str = setting("auto", group="several devices or nodes (Lightning)",
                            help="e.g. ddp (data-parallel: each process sees 1/N of the data, gradients averaged; "
                                 "gloo on CPU, NCCL on GPU)", resumable=True)

    def _check(self):
        if isinstance(self.devices, str) and self.devices != "auto":
            self.devices = devices_setting(self.devices)


def _parse_randomise(text: str) -> dict:
    from labelsky.data.transforms import NuisanceRandomisation

    return NuisanceRandomisation.parse_overrides(text)


@dataclass
class InputSettings(Settings):
    """What a network receives: which bands, how flux is stretched, the image size, a viewer rendering."""

    bands: list | None = setting(None, nargs="+", help="band names to use (default: all)")
    stretch: str = setting("asinh", choices=list(STRETCHES),
                           help="asinh (survey noise), khan ([-1, 1] per image), standardize (per band), "
                                "robust_asinh (per image: median, MAD noise, asinh), none")
    softening: float = 3.0
    # None: each dataset's asinh softening follows its own survey's noise (the same S/N contrast everywhere);
    # a survey name: that survey's noise for every dataset (one fixed flux stretch, as images stretched once)
    noise_survey: str | None = setting(None, help="asinh softening from this survey's noise for every dataset "
                                                  "(default: each dataset's own survey)")
    image_size: int | None = setting(None, check="positive_int", help="resize to this side (e.g. 224)")
    mask_channel: bool = setting(False, help="add a bad-pixel channel (imported data)")
    # render flux images as this survey viewer shows them (labelsky.data.display.RENDERERS): the model then takes
    # 8-bit RGB pictures (Galaxy Zoo, Galaxy10, viewer JPEG cutouts) as they are
    render: str | None = setting(None, metavar="VIEWER",
                                 help="render flux images as this survey viewer shows them (sdss, legacysurvey, "
                                      "hsc): the model then takes 8-bit RGB pictures (Galaxy Zoo, Galaxy10, viewer "
                                      "JPEGs) as they are")
    jpeg_quality: int | None = setting(None, check="percent", help="with --render: JPEG-compress every rendered "
                                                                   "picture at this quality (1-100)")
    black_point: float = setting(0.0, metavar="LEVEL",
                                 help="with --render: subtract this black level (0-1) from every rendered picture, in "
                                      "training and prediction (pictures with a darker sky than the viewer's; "
                                      "simulate --like prints the level of yours)")
    # nuisance randomisation of rendered training images (NuisanceRandomisation fields; {} = its defaults)
    randomise: dict | None = setting(None, parse=_parse_randomise, nargs="?", metavar="NAME=VALUE,...",
                                     help="with --render: random nuisances on every rendered training image "
                                          "(brightness, colour balance, blur, noise, sky residual, JPEG; display "
                                          "black level, contrast, gamma when asked); optional overrides, e.g. "
                                          "'blur=1.5,noise=2,jpeg_quality=40:95,black=0:0.12'")

    # flux images and 8-bit pictures in one model's data without a rendering: refused unless asked for (an
    # ablation: the naive path the sim-to-picture benchmarks measure)
    mixed_units: bool = setting(False, help="allow flux images and 8-bit pictures in one model's data without "
                                            "--render (an ablation: a network sees them differently)")

    def _check(self):
        if self.randomise is not None and not self.render:
            raise SettingsError("--randomise needs --render (the nuisances are drawn on rendered pictures)")
        if self.jpeg_quality is not None and not self.render:
            raise SettingsError("--jpeg-quality needs --render")
        if not (isinstance(self.black_point, (int, float)) and 0 <= self.black_point < 1):
            raise SettingsError(f"--black-point {self.black_point!r}: expected a level 0 <= LEVEL < 1")
        if self.black_point and not self.render:
            raise SettingsError("--black-point needs --render (it darkens rendered pictures)")
        if self.render:
            from labelsky.data.display import RENDERERS

            if self.render not in RENDERERS:
                raise SettingsError(f"--render {self.render!r}: expected one of {', '.join(sorted(RENDERERS))}")
        if self.randomise is not None:
            from labelsky.data.transforms import NuisanceRandomisation

            NuisanceRandomisation.from_dict(self.randomise)  # checked here, where the settings are made

    def preprocess(self, ds: LabelskyDataset, train: bool = False):
        """The preprocessing of ``ds`` images under these settings (``train``: with the training randomisation)."""
        return make_preprocess(ds, self.bands, self.stretch, self.softening, self.image_size, self.noise_survey,
                               self.mask_channel, render=self.render, jpeg_quality=self.jpeg_quality,
                               randomise=self.randomise if train else None, seed=getattr(self, "seed", 0),
                               black_point=self.black_point)

    def in_chans(self, ds: LabelskyDataset | None = None) -> int:
        """Input channels of a model: the bands used (all of ``ds``'s by default; 3 when rendered), plus the
        mask channel."""
        if self.render:
            return 3
        n = len(self.bands) if self.bands else len(ds.bands)
        return n + int(self.mask_channel)


@dataclass
class TrainSettings(RunSettings):
    """How long and how fast a network trains (each method sets its own defaults)."""

    lr: float = setting(1e-3, check="positive_float", help="learning rate")
    batch_size: int = setting(64, check="positive_int", help="batch size")
    max_epochs: int = setting(30, flag="--epochs", check="positive_int", help="epochs (at most)", resumable=True)
    patience: int | None = setting(5, check="non_negative_int",
                                   help="early stopping: epochs without improvement of the monitored metric",
                                   resumable=True)


def make_preprocess(ds: LabelskyDataset, bands=None, stretch="asinh", softening=3.0, size=None,
                    noise_survey: str | None = None, mask_channel: bool = False, *, render: str | None = None,
                    jpeg_quality: int | None = None, randomise: dict | None = None, seed: int = 0,
                    black_point: float = 0.0):
    """The preprocessing of ``ds`` images: band selection by name, survey-noise asinh stretch, resize.

    ``noise_survey`` names the survey whose pixel noise sets the asinh
    softening of every band (default: the dataset's own survey). Datasets of
    8-bit colour pictures (``flux_unit`` "display": Galaxy10, JPEG cutouts)
    are already stretched: ``asinh`` leaves them as they are (0-1).

    With ``render`` (a renderer of :data:`labelsky.data.display.RENDERERS`),
    flux images become the RGB picture that survey's viewer would show
    (:class:`~labelsky.data.transforms.RenderPreprocess`, optionally
    JPEG-compressed and, with ``randomise``, with random nuisances), and
    8-bit RGB pictures are taken as they are: both give the same input.
    """
    from labelsky.data.transforms import Preprocess, select_bands

    if render:
        from labelsky.data.transforms import NuisanceRandomisation, RenderPreprocess

        if mask_channel:
            raise SettingsError("--mask-channel cannot be combined with --render (a rendered picture has no "
                                "bad-pixel channel)")
        if ds.meta.get("flux_unit", "nanomaggy") == "display":
            if len(ds.bands) != 3:
                raise SettingsError(f"{ds.path}: {len(ds.bands)}-channel pictures; a model on rendered pictures "
                                    f"takes 3-channel RGB pictures")
            return Preprocess([0, 1, 2], stretch="none", size=size, fill="median")  # off-image pixels: sky
        scales = (ds.column("pixel_scale") if "pixel_scale" in ds.catalog.column_names
                  else ds.survey.pixel_scale)
        rand = NuisanceRandomisation.from_dict(randomise) if randomise is not None else None
        import zlib

        return RenderPreprocess(ds.bands, render, pixel_scale=scales, noise=ds.survey, jpeg_quality=jpeg_quality,
                                randomise=rand, size=size, seed=seed, salt=zlib.crc32(str(ds.path).encode()),
                                black_point=black_point)
    idx = select_bands(ds.bands, bands)
    if stretch == "asinh" and ds.meta.get("flux_unit", "nanomaggy") != "nanomaggy":
        return Preprocess(idx, stretch="none", size=size, mask_channel=mask_channel)
    if noise_survey is None:
        noise = [ds.survey.noise_sigma(b) for b in range(len(ds.bands))]
    else:
        from labelsky.data.surveys import get_survey

        ref = get_survey(noise_survey)
        missing = [b for b in ds.bands if b not in ref.bands]
        if missing and stretch == "asinh":
            raise SettingsError(f"noise_survey {ref.name!r} has no band(s) {missing} of {ds.path}")
        noise = [ref.noise_sigma(b) if b in ref.bands else 1.0 for b in ds.bands]
    return Preprocess(idx, noise=noise, stretch=stretch, softening=softening, size=size, mask_channel=mask_channel)
