"""The errors a user can cause.

Every error that a user's input, settings or folders can provoke is a
:class:`LabelskyError`; ``labelsky`` prints its message on one line and exits
with status 2. Anything else that escapes is a defect of labelsky.

The subclasses say whose fault it is:

- :class:`InputDataError`: a dataset, catalog, image file or table is missing,
  malformed or inconsistent (the message names file, row and field);
- :class:`SettingsError`: an option, config value, survey specification or
  weight file does not make sense (unknown band, unknown method, ...);
- :class:`RunFolderError`: a run folder cannot be used: no checkpoint, a
  corrupt or foreign checkpoint, or a resume with other settings or data;
- :class:`OutputError`: an output cannot be written where asked (it exists
  and is not labelsky's, it is an input of the command, the disk refuses).

They also derive from the built-in exception that fits (``ValueError`` or
``RuntimeError``), so ``except ValueError`` keeps working in user code.

:class:`LabelskyWarning` is what the library warns a user of (through
:mod:`warnings`): ``labelsky`` prints ``labelsky: warning: <message>``.
Progress and notes go to the ``labelsky`` logger (:mod:`logging`), which the
command line prints as ``labelsky: <message>``.
"""

from __future__ import annotations

__all__ = ["LabelskyError", "InputDataError", "SettingsError", "RunFolderError", "OutputError", "LabelskyWarning",
           "one_line", "disk_full", "unreadable_reason"]


class LabelskyError(Exception):
    """Base of every error a user can cause."""


class InputDataError(LabelskyError, ValueError):
    """Bad input data: a dataset, catalog, table or image file."""


class SettingsError(LabelskyError, ValueError):
    """Bad settings: an option, a config value, a survey specification, a weight file."""


class RunFolderError(LabelskyError, ValueError):
    """A run folder that cannot be used as asked (missing, corrupt or foreign checkpoint; resume refused)."""


class OutputError(LabelskyError, RuntimeError):
    """An output that labelsky refuses to (over)write, or that cannot be written."""


class LabelskyWarning(UserWarning):
    """Something a user should know of a finished step (a setting that did less than it may seem)."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on a single line (newlines folded, whitespace collapsed)."""
    text = " ".join(str(err).split())
    return text or err.__class__.__name__


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or the error it was raised while handling) says that the disk is full."""
    import errno

    for e in (err, err.__context__):
        if isinstance(e, OSError) and (e.errno == errno.ENOSPC or "No space left" in str(e)):
            return True
    return False


def unreadable_reason(err: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in a few words: never torch's advice to load it
    unsafely (which labelsky never does), never more than one line."""
    text = str(err).strip()
    if "Weights only load failed" in text or "weights_only" in text:
        return "it holds objects other than tensors and plain data, which labelsky never unpickles"
    return text.splitlines()[0][:200] if text else err.__class__.__name__
