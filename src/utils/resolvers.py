"""OmegaConf resolvers used by the configs; registered when the package is imported."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from src.utils.paths import REPO_ROOT

__all__ = ["REPO_ROOT", "if_else", "register_resolvers"]


def if_else(condition: Any, when_true: Any, when_false: Any) -> Any:
    """``${if:<bool>,<a>,<b>}``: ``a`` when the condition is true, else ``b`` (e.g. a paper table that
    depends on ``data.aligned``). The condition must be a boolean (``true``/``false``, any case)."""
    if isinstance(condition, str) and condition.lower() in ("true", "false"):
        condition = condition.lower() == "true"
    if not isinstance(condition, bool):
        raise ValueError(f"${{if:...}} needs a boolean condition, got {condition!r}")
    return when_true if condition else when_false


def register_resolvers() -> None:
    """``${repo_root:}`` is the checkout (or install) root that holds ``conf/`` and ``src/``;
    ``${if:cond,a,b}`` picks ``a`` or ``b`` by a boolean; ``${sweep_dir:<resume_sweep>,<parent>}`` is a
    new sweep's own directory or the one a sweep resume names (:func:`src.utils.sweep.sweep_dir`;
    cached, so every job of a sweep resolves the same directory); ``${gpu_count:<accelerator>,...}`` the
    GPUs a launcher asks for (:func:`src.utils.launchers.gpu_count`)."""
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("if"):
        OmegaConf.register_new_resolver("if", if_else)
    if not OmegaConf.has_resolver("sweep_dir"):
        from src.utils.sweep import sweep_dir

        OmegaConf.register_new_resolver("sweep_dir", sweep_dir, use_cache=True)
    if not OmegaConf.has_resolver("gpu_count"):
        from src.utils.launchers import gpu_count

        OmegaConf.register_new_resolver("gpu_count", gpu_count)
