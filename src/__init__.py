"""mmfusion: multimodal fusion classification experiments (Hydra + PyTorch Lightning)."""

from src.utils.resolvers import register_resolvers

register_resolvers()
