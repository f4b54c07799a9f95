"""Checkpoints that can be trusted: a checksum sidecar, weights-only loading, and an allow-list of
the classes a checkpoint's stored configs may name.

- :class:`ChecksummedCheckpointIO` (the Trainer's checkpoint plugin in ``src.train``) writes every
  checkpoint atomically and beside it ``<name>.ckpt.sha256`` (``sha256sum`` format); removing a
  checkpoint removes its sidecar.
- :func:`read_checkpoint` is how ``src.eval`` and a resume open a checkpoint: the sidecar is verified
  when present (a bit flip is an error, not a silently different model), the file is unpickled with
  torch's weights-only loader only, and every ``_target_`` of the stored run config and of the
  model's hyper-parameters must be on the allow-list (:func:`check_targets`): the repo's own
  DataModules, encoders, fusions and modules, torch optimizers and schedulers, and the Lightning
  callbacks, loggers and Trainer it ships configs for. Anything else (``numpy.savetxt``,
  ``os.system``, ...) is refused naming the key, before anything is instantiated.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from src.errors import CheckpointError

log = logging.getLogger("mmfusion")

SIDECAR_SUFFIX = ".sha256"


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ChecksummedCheckpointIO(TorchCheckpointIO):
    """Torch checkpoints written atomically (temporary file + rename) with a sha256 sidecar.

    The old sidecar is removed first and the new one written after the checkpoint, so an
    interruption leaves at worst a checkpoint without a sidecar (accepted with a warning), never a
    sidecar that disagrees with a complete checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        sidecar_path(path).unlink(missing_ok=True)
        _atomic_write(path, data)
        _atomic_write(sidecar_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode())

    def remove_checkpoint(self, path: str | Path) -> None:
        super().remove_checkpoint(path)
        sidecar_path(path).unlink(missing_ok=True)


def link_checkpoint(source: Path, target: Path) -> None:
    """``target`` as a second name of the checkpoint ``source``: a hard link (one copy on disk), or a
    copy where the filesystem has no hard links; replaced atomically, with its own sidecar."""
    tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError as err:
        log.info("%s: no hard link (%s); writing a copy of %s", target, err, source.name)
        shutil.copyfile(source, tmp)
    sidecar_path(target).unlink(missing_ok=True)
    os.replace(tmp, target)
    source_sidecar = sidecar_path(source)
    if source_sidecar.is_file():
        digest = source_sidecar.read_text().split()[0]
        _atomic_write(sidecar_path(target), f"{digest}  {target.name}\n".encode())


def verify_sidecar(path: Path, data: bytes) -> bool:
    """Raise :class:`CheckpointError` when ``path``'s sidecar disagrees with ``data``; False when
    there is no sidecar (checkpoints of older versions), True when it matches."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        log.warning("%s has no %s sidecar: its integrity cannot be checked", path, SIDECAR_SUFFIX)
        return False
    recorded = sidecar.read_text().split()[:1]
    found = hashlib.sha256(data).hexdigest()
    if recorded != [found]:
        raise CheckpointError(
            f"{path}: sha256 {found} does not match its sidecar {sidecar.name} "
            f"({recorded[0] if recorded else 'empty'}): the file changed after it was written "
            "(corrupted or tampered with); refusing to use it"
        )
    return True


#: module prefix -> (the base classes a target there must subclass, as "module:Class")
ALLOWED_TARGETS: dict[str, tuple[str, ...]] = {
    "src.data.": ("src.data.base:FusionDataModule",),
    "src.models.": ("torch.nn:Module",),
    "src.callbacks.": ("lightning.pytorch.callbacks:Callback",),
    "src.utils.loggers.": ("lightning.pytorch.loggers:Logger",),
    "src.utils.wandb_run.": ("lightning.pytorch.callbacks:Callback",),  # WandbMedia
    "torch.optim.": (
        "torch.optim:Optimizer",
        "torch.optim.lr_scheduler:LRScheduler",
        "torch.optim.lr_scheduler:ReduceLROnPlateau",
    ),
    "lightning.pytorch.callbacks.": ("lightning.pytorch.callbacks:Callback",),
    "lightning.pytorch.loggers.": ("lightning.pytorch.loggers:Logger",),
    "lightning.pytorch.trainer.": ("lightning.pytorch:Trainer",),
}


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def allowed_class(target: Any, key: str, where: str) -> type:
    """The class ``target`` names when it is on the allow-list; else :class:`CheckpointError` naming
    ``where`` and ``key``. Only modules under an allowed prefix are imported to check."""
    prefix = next((p for p in ALLOWED_TARGETS if isinstance(target, str) and target.startswith(p)), None)
    refused = CheckpointError(
        f"{where}: {key}={target!r} is not on the allow-list of classes a checkpoint may name "
        f"(the repo's DataModules/encoders/fusions/modules, torch optimizers and schedulers, Lightning "
        f"callbacks/loggers/Trainer: {sorted(ALLOWED_TARGETS)}); refusing to instantiate it"
    )
    if prefix is None:
        raise refused
    module_name, _, name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise CheckpointError(f"{where}: {key}={target!r} does not exist ({err})") from err
    if not isinstance(found, type) or not issubclass(found, tuple(_load(b) for b in ALLOWED_TARGETS[prefix])):
        raise refused
    return found


def check_targets(tree: Any, where: str, key: str = "") -> None:
    """Apply :func:`allowed_class` to every ``_target_`` anywhere in ``tree`` (dicts and lists)."""
    if isinstance(tree, Mapping):
        for name, value in tree.items():
            path = f"{key}.{name}" if key else str(name)
            if name == "_target_":
                allowed_class(value, path, where)
            else:
                check_targets(value, where, path)
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            check_targets(value, where, f"{key}[{i}]")


def _reason(error: BaseException) -> str:
    """A short, safe reason from torch's loading error (never its advice to disable weights-only)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [line for line in lines if line.startswith("WeightsUnpickler error")]
    text = specific[0] if specific else (lines[0] if lines else "")
    if "weights_only" in text or "Weights only load failed" in text:
        text = "the file is not a torch checkpoint of plain tensors and values"
    return f"{type(error).__name__}: {text}"[:300]


#: the fusion ``_target_`` of ModDrop before it became :class:`src.models.fusion.moddrop.ModalityDropout`
#: (a58f5df): a wrapper with its probability ``p`` and its ``inner`` fusion config
OLD_MODDROP_TARGET = "src.models.fusion.moddrop.ModDropFusion"


def upgrade_fusion_config(fusion: Mapping[str, Any]) -> Mapping[str, Any]:
    """A checkpoint's ``fusion`` hyper-parameters in today's form: the old ModDrop wrapper
    ``{_target_: ModDropFusion, p, inner, modality_order}`` is its ``inner`` fusion with
    ``moddrop_p: p`` (its weights: ``src.models.module.MOVED_PREFIXES``); anything else is returned as it is."""
    if fusion.get("_target_") != OLD_MODDROP_TARGET:
        return fusion
    inner = dict(fusion.get("inner") or {"_target_": "src.models.fusion.concat.ConcatFusion"})
    if fusion.get("modality_order") is not None:
        inner["modality_order"] = fusion["modality_order"]
    return {**inner, "moddrop_p": fusion.get("p", 0.0)}


def upgrade_fusion_configs(tree: Any) -> Any:
    """``tree`` with :func:`upgrade_fusion_config` applied to every mapping that names the old ModDrop
    (a run config holds the fusion twice: ``fusion`` and ``model.fusion``)."""
    if isinstance(tree, Mapping):
        if tree.get("_target_") == OLD_MODDROP_TARGET:
            return upgrade_fusion_configs(upgrade_fusion_config(tree))
        return {name: upgrade_fusion_configs(value) for name, value in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(upgrade_fusion_configs(value) for value in tree)
    return tree


def read_checkpoint(path: Path, run_config_key: str) -> tuple[dict[str, Any], bytes]:
    """The verified checkpoint at ``path`` and its bytes (see the module docstring)."""
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path} is not a file")
    data = path.read_bytes()
    verify_sidecar(path, data)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({_reason(err)})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    for key in ("hyper_parameters", run_config_key):  # earlier layouts' configs, then the allow-list
        checkpoint[key] = upgrade_fusion_configs(checkpoint.get(key))
        check_targets(checkpoint[key], str(path), key)
    return checkpoint, data
