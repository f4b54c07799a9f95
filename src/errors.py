"""Errors that mean "your input is wrong", as opposed to a bug in this repo.

Every entry point (``src.train``, ``src.eval``, ``src.data.check``) prints a :class:`UserError` as one
message and exits with code 2; ``HYDRA_FULL_ERROR=1`` adds the full traceback. The message names
the file, the key or the option, what was expected and what was found.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's configuration, data files, run directory or checkpoint."""


class ConfigError(UserError, ValueError):
    """A configuration value that cannot be right (named by its key, e.g. ``trainer.max_epochs=0``)."""


class IncompatibleError(ConfigError):
    """A dataset modality, its encoder and the fusion that cannot work together (refused when the model
    is built, never inside a step); the message names both sides and what would work instead."""


class DataFormatError(UserError, ValueError):
    """A data file that is not in its published format (wrong keys, shapes, dtypes, overlapping splits)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used: unreadable, tampered with, or naming code outside the allow-list."""


class RunDirError(UserError):
    """A run directory that holds another run, or is in use by another process."""


def user_error_in(error: BaseException) -> UserError | None:
    """The :class:`UserError` that caused ``error`` (itself, or along its ``__cause__`` chain, e.g.
    inside Hydra's ``InstantiationException``), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


WORKER_TRACE = "Original Traceback (most recent call last):"


def user_message(error: UserError) -> str:
    """The error's own message; a DataLoader worker's re-raised copy carries the worker's traceback
    before it, which is cut off here."""
    message = str(error)
    if WORKER_TRACE not in message:
        return message
    name = f"{type(error).__module__}.{type(error).__qualname__}: "
    cut = message.rfind(name)
    return message[cut + len(name) :] if cut >= 0 else message
