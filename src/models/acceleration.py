"""Speed options of a model that leave its weights and checkpoints as they are.

``model.compile``: ``torch.compile`` of each encoder and of the fusion in place
(``nn.Module.compile``), so parameter names keep no ``_orig_mod.`` prefix and a checkpoint of a
compiled run loads into an eager model (``load_from_checkpoint``, ``src.eval``) unchanged. The
module that wraps them is not compiled: its batches carry sample ids (strings), on which compiled
code would guard and recompile every step. ``false`` = eager; ``true`` = torch's defaults; a mapping
passes its keys to ``torch.compile`` (e.g. ``{mode: max-autotune, dynamic: true}``).

``model.channels_last``: 4-D convolution weights and 4-D batch tensors (images, spectrograms) in
the channels-last memory format, which cuDNN's tensor-core convolutions prefer under bf16; the
values, and the checkpoint's tensors once loaded, are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn


def compile_options(setting: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``torch.compile`` keyword arguments of a ``model.compile`` setting; None when it is off."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return {}
    if isinstance(setting, Mapping):
        return dict(setting)
    raise ValueError(f"model.compile={setting!r}: expected true, false or a mapping of torch.compile options")


def compile_in_place(modules: Iterable[nn.Module], options: Mapping[str, Any]) -> None:
    """``torch.compile`` every module's forward in place (state-dict keys unchanged)."""
    for module in modules:
        module.compile(**options)


def channels_last_batch(batch: Any) -> Any:
    """The batch with its 4-D floating tensors in channels-last memory format (others unchanged)."""
    if isinstance(batch, dict):
        return {
            key: value.contiguous(memory_format=torch.channels_last)
            if torch.is_tensor(value) and value.dim() == 4 and value.is_floating_point()
            else value
            for key, value in batch.items()
        }
    return batch
