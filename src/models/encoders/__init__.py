"""Per-modality encoders: raw modality tensors in, (B, D) vectors or (B, T, D) sequences out."""

from src.models.encoders.base import Encoder, build_encoder

__all__ = ["Encoder", "build_encoder"]
