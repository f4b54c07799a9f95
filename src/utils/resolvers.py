"""OmegaConf resolvers used by the configs; registered when the package is imported."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]


def register_resolvers() -> None:
    """``${repo_root:}`` is the checkout (or install) root that holds ``conf/`` and ``src/``."""
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
