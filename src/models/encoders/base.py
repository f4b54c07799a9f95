"""Encoder interface and the two encoders every dataset can use without extra weights."""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from src.errors import IncompatibleError
from src.models.heads import dense_layers

#: what an encoder hands the fusion, per sample (``Encoder.output_form``): a (D,) vector, a (T, D)
#: sequence with its mask, (C, H, W) maps (an image through the identity, a CNN's last conv maps; a
#: conv-branch fusion can convolve them, any other takes them flattened), or the raw strings (for a
#: fusion that tokenizes them itself, MMBT)
VECTOR, SEQUENCE, MAP, RAW_TEXT = "vector", "sequence", "map", "raw text"
#: the modality kinds that arrive as tensors
TENSOR_KINDS = ("vector", "image", "sequence")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file (cached per path, size and mtime: weights are hashed once per process)."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WeightsUnavailableError(FileNotFoundError):
    """``pretrained: true`` but the weights cannot be found; the message names the model and how to provide them."""


def constructor_option(cls: type, options: Mapping[str, Any], name: str) -> Any:
    """The value of ``cls``'s constructor option ``name`` under ``options``: its signature default if
    unset, looked up along the base classes for options a constructor passes on in ``**kwargs``."""
    if name in options:
        return options[name]
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameter = inspect.signature(klass.__init__).parameters.get(name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def state_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict: every entry's name and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def freeze(module: nn.Module) -> None:
    """No gradient for any parameter of ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)


class Encoder(nn.Module):
    """Maps one modality's batch tensor to features.

    Subclasses set ``out_dim`` and ``returns_sequence`` (True: (B, T, out_dim) aligned with the input
    mask; False: (B, out_dim)). ``provenance`` says where pretrained weights came from (name, source,
    sha256) so every run can record it.

    Before anything is built, the class declares which modality kinds it takes (``accepts_kinds``,
    or :meth:`kinds_for` when an option decides) and what it will return (:meth:`output_form`), so
    :func:`src.models.compat.check_compatible` can refuse a pairing at build time.
    """

    out_dim: int
    returns_sequence: bool = False
    requires_fit: bool = False
    accepts_kinds: tuple[str, ...] = TENSOR_KINDS
    returns_raw_text: bool = False

    @classmethod
    def option(cls, options: Mapping[str, Any], name: str) -> Any:
        return constructor_option(cls, options, name)

    @classmethod
    def kinds_for(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The modality kinds this encoder takes when configured with ``options``."""
        return cls.accepts_kinds

    @classmethod
    def refusal(cls, kind: str, shape: Sequence[int], options: Mapping[str, Any]) -> str | None:
        """Why this encoder under ``options`` cannot take a ``kind`` modality of ``shape`` (None: it can),
        read before it is built."""
        kinds = cls.kinds_for(options)
        return None if kind in kinds else f"takes kind {' or '.join(kinds)}"

    @classmethod
    def output_form(cls, kind: str, options: Mapping[str, Any]) -> str:
        """What it returns for a ``kind`` modality under ``options``: VECTOR, SEQUENCE, MAP or RAW_TEXT
        (the instance's ``returns_sequence`` / ``feature_shape`` agree; a test checks)."""
        if cls.returns_raw_text:
            return RAW_TEXT
        if cls.returns_sequence:
            return SEQUENCE
        return SEQUENCE if cls.option(options, "return_sequence") else VECTOR

    def __init__(self, input_shape: Sequence[int], kind: str) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.kind = kind

    @property
    def provenance(self) -> dict[str, Any]:
        return {"encoder": type(self).__name__, "weights": "random init"}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one sample's features before flattening: (out_dim,) unless the features are a
        map (an image through the identity encoder, a CNN's last conv maps), which fusions with conv
        stages (CentralNet, layer fusion) can convolve."""
        return (int(self.out_dim),)

    @property
    def cacheable(self) -> bool:
        """True when outputs depend on the input only, so a feature cache may store them once per sample.

        That is: no trainable parameter, nothing fitted on data, and no training-time randomness
        (modules flagged ``randomizes_training``, e.g. image augmentation). Frozen backbones qualify
        because they stay in eval mode.
        """
        return (
            not self.requires_fit
            and not any(p.requires_grad for p in self.parameters())
            and not any(getattr(m, "randomizes_training", False) for m in self.modules())
        )

    @property
    def weights_from_source(self) -> bool:
        """True when no weight is trained and all come from pretrained files that ``provenance`` names
        with their sha256: a checkpoint then references them instead of storing them
        (:class:`src.models.module.FusionClassifier`), and loading rebuilds them from those files."""
        return (
            bool(self.provenance.get("sha256"))
            and not self.requires_fit
            and not any(p.requires_grad for p in self.parameters())
        )

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: Any, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features and the mask that goes with them.

        Encoders that make their own steps (text encoders that tokenize raw strings) override this to
        return their token mask; the others keep the input mask.
        """
        return self(x, mask), mask

    def fit(self, train_inputs: Sequence[Any]) -> None:
        """Fit data-dependent state (e.g. TF-IDF statistics) on the training split's raw inputs only.

        Called once by :class:`src.models.module.FusionClassifier` at the start of fitting for encoders
        with ``requires_fit = True``; the fitted state lives in buffers, so checkpoints carry it.
        """


class IdentityEncoder(Encoder):
    """Passes features through: sequences stay (B, T, D); anything else is flattened to (B, D)."""

    @classmethod
    def output_form(cls, kind: str, options: Mapping[str, Any]) -> str:
        return {"sequence": SEQUENCE, "image": MAP}.get(kind, VECTOR)

    def __init__(self, input_shape: Sequence[int], kind: str) -> None:
        super().__init__(input_shape, kind)
        self.returns_sequence = kind == "sequence"
        self.out_dim = self.input_shape[-1] if self.returns_sequence else math.prod(self.input_shape)

    @property
    def provenance(self) -> dict[str, Any]:
        return {"encoder": "identity", "weights": "none"}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.input_shape if self.kind == "image" else (int(self.out_dim),)

    def forward(self, x, mask=None):
        return x if self.returns_sequence else x.flatten(1)


class MLPEncoder(Encoder):
    """Flattened input through fully connected layers (e.g. CentralNet's per-modality MLP trunk)."""

    accepts_kinds = ("vector", "image")  # a padded (T, D) sequence has no fixed length to flatten

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        hidden_dims: Sequence[int] = (256,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(input_shape, kind)
        layers, self.out_dim = dense_layers(
            math.prod(self.input_shape), hidden_dims, activation, batch_norm, dropout
        )
        self.net = nn.Sequential(nn.Flatten(1), *layers)

    def forward(self, x, mask=None):
        return self.net(x)


IDENTITY_SPEC: dict[str, Any] = {"_target_": "src.models.encoders.base.IdentityEncoder"}


def build_encoder(spec: Mapping[str, Any] | None, input_shape: Sequence[int], kind: str) -> Encoder:
    """Instantiate ``spec`` (a plain dict with ``_target_``) for a modality of the given shape/kind."""
    options = dict(spec or IDENTITY_SPEC)
    target = options.pop("_target_", None)
    if target is None:
        raise ValueError(f"encoder spec {dict(spec)} has no _target_")
    cls = encoder_class(target)
    reason = cls.refusal(kind, input_shape, options)
    if reason:
        raise IncompatibleError(
            f"encoder {target} {reason}: not a {kind} modality of shape {list(input_shape)}"
        )
    return cls(input_shape=input_shape, kind=kind, **options)


def encoder_class(target: str) -> type[Encoder]:
    """The :class:`Encoder` subclass ``target`` names."""
    cls = get_class(target)
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise TypeError(f"{target} is not a src.models.encoders.Encoder")
    return cls
