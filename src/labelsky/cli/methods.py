"""The training commands, one per registered method, generated from the method registry.

Each :class:`~labelsky.methods.registry.MethodSpec` gives a command (``train``,
``adapt``, ``semisup``, ``pretrain``, ``richness``, and any method registered
later): one option per dataset it takes (``--data``, ``--source`` ...), ``--out``
(the run folder), one option per setting its config declares
(:func:`labelsky.cli.options.add_settings`) and ``--overwrite``. The command
builds the settings and trains through :func:`labelsky.methods.registry.train`
(the datasets, their rows, the run's lock, the method's ``fit``); then it
prints the method's summary.
"""

from __future__ import annotations

import functools
from pathlib import Path

from labelsky.cli.options import add_out, add_overwrite, add_settings, rank_zero, settings_from_args

__all__ = ["add_method_commands"]


def add_method_commands(sub) -> None:
    """A command for every registered method."""
    from labelsky.methods.registry import get_method, list_methods

    for name in list_methods():
        spec = get_method(name)
        p = sub.add_parser(spec.command, help=spec.description, description=spec.description)
        for role in spec.inputs:
            p.add_argument(f"--{role.name}", nargs="+" if role.many else None, type=Path, required=role.required,
                           default=None, help=role.help)
        add_out(p, "run folder")
        add_settings(p, spec.config_cls, exclude=spec.cli_exclude)
        add_overwrite(p)
        p.set_defaults(func=functools.partial(cmd_method, spec))


def cmd_method(spec, a) -> int:
    """Train ``spec``'s method as the parsed arguments say, into ``--out``."""
    from labelsky.methods.registry import train

    cfg = settings_from_args(spec.config_cls, a)
    datasets = {r.name: getattr(a, r.name) for r in spec.inputs if getattr(a, r.name) is not None}
    fitted = train(spec, a.out, datasets, cfg, overwrite=a.overwrite)
    if not rank_zero():  # after a distributed fit, only rank 0 reports
        return 0
    for line in spec.summary(a.out, fitted.report):
        print(line)
    return 0
