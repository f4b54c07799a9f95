"""Per-modality networks cut into stages, for the fusions that mix hidden layers (CentralNet,
layer fusion): conv stages on images (C, H, W), dense stages on vectors, then an output layer.

Stage j maps the hidden state at depth j to depth j + 1; depth 0 is the input. Conv stages are
conv 3x3 (padding 1), optional batch norm, ReLU and 2x2 max pooling (while the map is at least
2x2), the LeNet-like trunk of CentralNet's MNIST experiments; dense stages are linear, optional
batch norm, ReLU and dropout; the last stage is linear to the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from src.models.fusion.base import FusionInputs, Predictor
from src.models.heads import HeadFactory
from src.tasks import TaskLink

BRANCHES = ("auto", "dense", "conv")
ALIGNS = ("pad", "project")


def resolve_branch(branch: str, shapes: Mapping[str, Sequence[int]]) -> str:
    """``auto``: conv when every modality is an image of the same (C, H, W), dense otherwise."""
    if branch not in BRANCHES:
        raise ValueError(f"fusion.branch={branch!r}; expected one of {BRANCHES}")
    images = [tuple(s) for s in shapes.values() if len(s) == 3]
    same_images = len(images) == len(shapes) and len(set(images)) == 1
    if branch == "conv" and not same_images:
        raise ValueError(
            f"fusion.branch=conv needs every modality to be an image of one (C, H, W) shape; got {dict(shapes)}"
        )
    if branch == "auto":
        return "conv" if same_images else "dense"
    return branch


def build_stages(
    input_shape: Sequence[int],
    conv_channels: Sequence[int],
    hidden_dims: Sequence[int],
    out_dim: int,
    batch_norm: bool = True,
    dropout: float = 0.0,
    conv_kernel: int = 3,
) -> tuple[nn.ModuleList, list[tuple[int, ...]]]:
    """The stages and the shape of the hidden state at every depth (input first, outputs last).

    ``conv_channels`` apply only to a (C, H, W) input; a vector input has dense stages only. Conv
    stages are conv ``conv_kernel`` x ``conv_kernel`` with same padding (odd sizes), [BN], ReLU,
    2x2 max pooling: with ``conv_kernel=5``, channels (6, 16) and dense (120, 84) they are the
    ``encoder/image=lenet`` trunk, so fused and trunk-based table rows share one architecture.
    """
    if conv_kernel % 2 != 1:
        raise ValueError(f"conv_kernel={conv_kernel}: same padding needs an odd kernel size")
    shape = tuple(int(s) for s in input_shape)
    shapes = [shape]
    stages = []
    if len(shape) == 3:
        for channels in conv_channels:
            pool = shape[1] >= 2 and shape[2] >= 2
            block: list[nn.Module] = [nn.Conv2d(shape[0], channels, conv_kernel, padding=conv_kernel // 2)]
            if batch_norm:
                block.append(nn.BatchNorm2d(channels))
            block.append(nn.ReLU())
            if pool:
                block.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*block))
            shape = (channels, shape[1] // 2, shape[2] // 2) if pool else (channels, shape[1], shape[2])
            shapes.append(shape)
    for depth, hidden in enumerate(hidden_dims):
        block = [nn.Flatten(1)]
        if depth == 0 and len(shape) == 3 and dropout > 0:  # on the conv features too, as ConvEncoder
            block.append(nn.Dropout(dropout))
        block.append(nn.Linear(math.prod(shape), hidden))
        if batch_norm:
            block.append(nn.BatchNorm1d(hidden))
        block.append(nn.ReLU())
        if dropout > 0:
            block.append(nn.Dropout(dropout))
        stages.append(nn.Sequential(*block))
        shape = (hidden,)
        shapes.append(shape)
    stages.append(nn.Sequential(nn.Flatten(1), nn.Linear(math.prod(shape), out_dim)))
    shapes.append((out_dim,))
    return nn.ModuleList(stages), shapes


class InputAligner(nn.Module):
    """Brings modality inputs of different sizes to one shape so they can be summed.

    ``pad``: zero-pad every vector to the largest size (CentralNet's MM-IMDb setting: 300-d text
    padded to 4096); ``project``: a learned linear map of every vector to the largest size. Images
    of one shape (conv branches) pass unchanged.
    """

    def __init__(self, shapes: Mapping[str, Sequence[int]], mode: str) -> None:
        super().__init__()
        if mode not in ALIGNS:
            raise ValueError(f"fusion.align={mode!r}; expected one of {ALIGNS}")
        self.shapes = {m: tuple(s) for m, s in shapes.items()}
        self.mode = mode
        if len(set(self.shapes.values())) == 1:
            self.shape = next(iter(self.shapes.values()))
            self.maps = nn.ModuleDict()
            return
        dims = {m: math.prod(s) for m, s in self.shapes.items()}
        self.shape = (max(dims.values()),)
        if mode == "project":
            self.maps = nn.ModuleDict(
                {m: nn.Linear(d, self.shape[0]) for m, d in dims.items() if d != self.shape[0]}
            )
        else:
            self.maps = nn.ModuleDict()
        self.pad = {m: self.shape[0] - d for m, d in dims.items()}

    def forward(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if len(set(self.shapes.values())) == 1:
            return x
        x = x.flatten(1)
        if modality in self.maps:
            return self.maps[modality](x)
        return nn.functional.pad(x, (0, self.pad[modality]))


def reshape_input(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A flattened feature (B, prod(shape)) back to (B, *shape)."""
    return x.reshape(x.shape[0], *shape)


class StagedPredictor(Predictor):
    """Base of the predictors built from per-modality stage networks (CentralNet, layer fusion): the
    one set of stage options they share, the branch kind and each modality's input shape.

    ``branch``: conv stages on same-shape images, dense otherwise (:func:`resolve_branch`);
    ``conv_channels``, ``conv_kernel``, ``hidden_dims``, ``batch_norm``, ``dropout``: the stages
    (:func:`build_stages`); ``align``: how inputs of different sizes meet (:class:`InputAligner`).
    """

    min_modalities = 2
    image_maps_when = {"branch": "conv"}  # conv branches convolve every modality's (C, H, W) maps

    def __init__(
        self,
        inputs: FusionInputs,
        make_head: HeadFactory,
        link: TaskLink,
        branch: str = "auto",
        conv_channels: Sequence[int] = (16, 32),
        conv_kernel: int = 3,
        hidden_dims: Sequence[int] = (128,),
        align: str = "pad",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, make_head, link)
        self.branch = resolve_branch(branch, {m: inputs.shapes[m] for m in self.modalities})
        self.shapes = {
            m: tuple(inputs.shapes[m]) if self.branch == "conv" else (self.input_dims[m],)
            for m in self.modalities
        }
        self.align_mode = align
        self.stage_options = {
            "conv_channels": conv_channels,
            "conv_kernel": conv_kernel,
            "hidden_dims": hidden_dims,
            "batch_norm": batch_norm,
            "dropout": dropout,
        }

    def stages(self, input_shape: Sequence[int]) -> nn.ModuleList:
        """A network from ``input_shape`` to the outputs, cut into stages."""
        return build_stages(input_shape, out_dim=self.num_outputs, **self.stage_options)[0]

    def aligner(self) -> InputAligner:
        """The :class:`InputAligner` of the modality inputs (``fusion.align``)."""
        return InputAligner(self.shapes, self.align_mode)
