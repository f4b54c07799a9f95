"""mmfusion: multimodal fusion classification experiments (Hydra + PyTorch Lightning)."""

from src.utils.allocator import configure_malloc
from src.utils.resolvers import register_resolvers

configure_malloc()  # before any tensor: freed activations are reused, not unmapped (src/utils/allocator.py)
register_resolvers()
