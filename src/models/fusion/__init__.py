"""Fusion modules: each maps a dict of modality features to a :class:`FusionOutput`."""

from src.models.fusion.base import Fusion, FusionOutput

__all__ = ["Fusion", "FusionOutput"]
