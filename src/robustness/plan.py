"""A ``conf/robustness/`` option, validated and resolved against a checkpoint's modalities.

An option holds ``modalities`` (null: all), ``seeds`` and ``perturbations``: per modality kind, a
mapping ``{perturbation: levels}``. :func:`validate_config` checks it against the registry without any
data (a test composes every option through it); :func:`plan_sweep` resolves it for the modalities and
kinds of one checkpoint into the (modality, perturbation, levels) curves to measure, so an unknown
perturbation, an inadmissible kind or a modality the checkpoint does not have is named before any
work starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from src.errors import ConfigError
from src.robustness.perturbations import KINDS, PERTURBATIONS, PerturbationError, get_perturbation

CONFIG_KEYS = ("modalities", "seeds", "perturbations")


class RobustnessConfigError(ConfigError):
    """A ``robustness`` config that cannot be swept; the message names the key and what was expected
    (a user error: ``python -m src.robustness`` prints it and exits with code 2 before any work)."""


@dataclass(frozen=True)
class SweepItem:
    """One curve to measure: ``perturbation`` at every level of ``levels`` on ``modality``."""

    modality: str
    kind: str
    perturbation: str
    levels: tuple[float, ...]


@dataclass(frozen=True)
class SweepPlan:
    """The curves of a sweep, its seeds, and the modalities no perturbation of the option applies to."""

    items: tuple[SweepItem, ...]
    seeds: tuple[int, ...]
    not_swept: dict[str, str] = field(default_factory=dict)


def _plain(config: Any) -> Any:
    if isinstance(config, DictConfig | ListConfig):
        return OmegaConf.to_container(config, resolve=True)
    return config


def _levels(path: str, name: str, levels: Any) -> tuple[float, ...]:
    if not isinstance(levels, Sequence) or isinstance(levels, str) or len(levels) < 2:
        raise RobustnessConfigError(f"{path}: expected a list of at least 2 levels (0 first), got {levels!r}")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in levels):
        raise RobustnessConfigError(f"{path}: levels must be numbers, got {levels!r}")
    values = tuple(float(v) for v in levels)
    if values[0] != 0.0:
        raise RobustnessConfigError(
            f"{path}: the first level must be 0 (the clean test set every summary is normalised by), got {values[0]}"
        )
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise RobustnessConfigError(f"{path}: levels must increase strictly, got {list(values)}")
    for value in values:
        try:
            PERTURBATIONS[name].check_level(value)
        except PerturbationError as err:
            raise RobustnessConfigError(f"{path}: {err}") from None
    return values


def validate_config(config: Any) -> dict[str, dict[str, tuple[float, ...]]]:
    """Check an option's structure, names, kinds and levels; returns ``{kind: {perturbation: levels}}``."""
    config = _plain(config)
    if not isinstance(config, Mapping):
        raise RobustnessConfigError(
            f"robustness: expected a mapping with {list(CONFIG_KEYS)}, got {config!r}"
        )
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise RobustnessConfigError(f"robustness: unknown keys {unknown}; expected {list(CONFIG_KEYS)}")
    modalities = config.get("modalities")
    if modalities is not None and (
        not isinstance(modalities, Sequence)
        or isinstance(modalities, str)
        or not modalities
        or not all(isinstance(m, str) for m in modalities)
        or len(set(modalities)) != len(modalities)
    ):
        raise RobustnessConfigError(
            f"robustness.modalities: expected null (all) or a non-empty list of distinct names, got {modalities!r}"
        )
    seeds = config.get("seeds")
    if (
        not isinstance(seeds, Sequence)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise RobustnessConfigError(
            f"robustness.seeds: expected a non-empty list of distinct ints >= 0, got {seeds!r}"
        )
    per_kind = config.get("perturbations")
    if not isinstance(per_kind, Mapping) or not per_kind:
        raise RobustnessConfigError(
            f"robustness.perturbations: expected {{kind: {{perturbation: levels}}}}, got {per_kind!r}"
        )
    resolved: dict[str, dict[str, tuple[float, ...]]] = {}
    for kind, entries in per_kind.items():
        path = f"robustness.perturbations.{kind}"
        if kind not in KINDS:
            raise RobustnessConfigError(f"{path}: unknown modality kind {kind!r}; known kinds: {list(KINDS)}")
        if not isinstance(entries, Mapping) or not entries:
            raise RobustnessConfigError(f"{path}: expected {{perturbation: levels}}, got {entries!r}")
        resolved[kind] = {}
        for name, levels in entries.items():
            try:
                get_perturbation(name, f"<any {kind} modality>", kind)
            except PerturbationError as err:
                raise RobustnessConfigError(f"{path}.{name}: {err}") from None
            resolved[kind][name] = _levels(f"{path}.{name}", name, levels)
    return resolved


def plan_sweep(
    config: Any, modality_kinds: Mapping[str, str], unread: Mapping[str, str] | None = None
) -> SweepPlan:
    """The curves of ``config`` for a checkpoint whose modalities have the given kinds (in its order).

    ``unread`` ({modality: why}) names modalities the model ignores (a unimodal baseline's other
    modalities): with ``modalities: null`` they are not swept (their curves are flat by construction)
    and are listed in ``not_swept``; a request naming one still sweeps it.

    Raises :class:`RobustnessConfigError` for a requested modality the checkpoint does not have, a
    requested modality no perturbation of the option applies to, or an option that sweeps nothing.
    Unrequested modalities without an applicable perturbation are listed in ``not_swept``.
    """
    config = _plain(config)
    per_kind = validate_config(config)
    for modality, kind in modality_kinds.items():
        if kind not in KINDS:
            raise RobustnessConfigError(
                f"modality {modality!r} has kind {kind!r}; known kinds: {list(KINDS)}"
            )
    requested = config.get("modalities")
    if requested is not None:
        unknown = [m for m in requested if m not in modality_kinds]
        if unknown:
            raise RobustnessConfigError(
                f"robustness.modalities: {unknown} not among the checkpoint's modalities {list(modality_kinds)}"
            )
    unread = dict(unread or {}) if requested is None else {}
    chosen = list(requested) if requested is not None else [m for m in modality_kinds if m not in unread]
    items: list[SweepItem] = []
    not_swept: dict[str, str] = dict(unread)
    for modality in chosen:
        kind = modality_kinds[modality]
        entries = per_kind.get(kind, {})
        if not entries:
            reason = f"this robustness option has no perturbation for kind {kind}"
            if requested is not None:
                raise RobustnessConfigError(f"robustness.modalities: {modality!r} (kind {kind}): {reason}")
            not_swept[modality] = reason
        items += [SweepItem(modality, kind, name, levels) for name, levels in entries.items()]
    if not items:
        raise RobustnessConfigError(
            f"robustness: nothing to sweep for modalities {dict(modality_kinds)} ({not_swept})"
        )
    return SweepPlan(tuple(items), tuple(int(s) for s in config["seeds"]), not_swept)


def n_evaluations(plan: SweepPlan) -> int:
    """Perturbed test passes the plan needs (the clean pass, level 0, is shared by every curve)."""
    return len(plan.seeds) * sum(len(item.levels) - 1 for item in plan.items) + 1
