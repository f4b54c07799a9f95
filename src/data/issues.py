"""Bad-input policy: every problem found in a dataset's files is an error, or is skipped/blanked and counted.

A DataModule owns one :class:`IssueLog`. Each kind of problem (``PROBLEMS``) has a configured policy
(``data.on_problem.<problem>``): ``error`` (default) raises :class:`DataIssueError` naming the file,
key and expectation; ``skip`` drops the sample; ``blank`` replaces the broken value by zeros (only
where a zero input is meaningful). Whatever is skipped or blanked is counted per split and problem,
logged, and written by ``src.train`` to ``data_issues.json`` in the run directory. Repairs that the
published reference loaders apply unconditionally (MulT's ``-inf`` audio -> 0) are counted as
``fixes``. ``report`` mode (used by ``python -m src.data.check``) records every problem and goes on.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.errors import ConfigError, UserError

log = logging.getLogger("mmfusion")

ERROR, SKIP, BLANK = "error", "skip", "blank"
POLICIES = (ERROR, SKIP, BLANK)

#: problem -> the policies that make sense for it
PROBLEMS: dict[str, tuple[str, ...]] = {
    "missing_file": (ERROR, SKIP, BLANK),  # an id of the split has no file for a modality
    "unreadable_file": (ERROR, SKIP, BLANK),  # image / pickle / json that does not open or decode
    "empty_text": (ERROR, SKIP, BLANK),  # no plot / synopsis text
    "unknown_label": (ERROR, SKIP),  # a label outside the class list, not as the format says, or none
    "bad_shape": (ERROR, SKIP, BLANK),  # array of the wrong shape or dtype
    "nonfinite": (ERROR, SKIP, BLANK),  # NaN / inf in a feature array
    "missing_id": (ERROR, SKIP),  # an id of the split absent from the data
}
#: the first examples kept per (split, problem), for messages and the check report
MAX_EXAMPLES = 5


class DataIssueError(UserError, ValueError):
    """A data problem under the ``error`` policy; the message names the file/key and the expectation."""


class IssueLog:
    """Applies the configured policy per problem and counts what it skipped, blanked or fixed."""

    def __init__(self, policies: Mapping[str, str] | None = None, report: bool = False) -> None:
        policies = dict(policies or {})
        unknown = sorted(set(policies) - set(PROBLEMS))
        if unknown:
            raise ConfigError(f"data.on_problem names unknown problems {unknown}; known: {sorted(PROBLEMS)}")
        for problem, policy in policies.items():
            if policy not in PROBLEMS[problem]:
                raise ConfigError(f"data.on_problem.{problem}={policy!r}; allowed: {list(PROBLEMS[problem])}")
        self.policies = {p: policies.get(p, ERROR) for p in PROBLEMS}
        self.report = report
        self.counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self.examples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def problem(self, split: str, problem: str, message: str, allow: tuple[str, ...] | None = None) -> str:
        """Handle one problem; returns the action taken (``skip`` or ``blank``) or raises under ``error``.

        ``allow`` narrows the policies that make sense at this call site (e.g. no ``blank`` for a label).
        """
        policy = self.policies[problem]
        if self.report:  # record and go on, with an action this call site supports
            policy = SKIP if allow is None or SKIP in allow else allow[0]
        if allow is not None and policy not in allow and policy != ERROR:
            raise ConfigError(
                f"data.on_problem.{problem}={policy!r} is not possible here ({message}); allowed: {list(allow)}"
            )
        if policy == ERROR:
            options = " or ".join(
                f"data.on_problem.{problem}={p}" for p in (allow or PROBLEMS[problem]) if p != ERROR
            )
            raise DataIssueError(
                f"[{split}] {problem}: {message}\n(to {'/'.join(p for p in (allow or PROBLEMS[problem]) if p != ERROR)} "
                f"such samples and count them, add {options} to the command; "
                "`python -m src.data.check data=<name>` lists every problem)"
            )
        self.counts[split][problem][policy] += 1
        if len(self.examples[split][problem]) < MAX_EXAMPLES:
            self.examples[split][problem].append(message)
        return policy

    def fixed(self, split: str, what: str, count: int) -> None:
        """Count values repaired unconditionally (as the reference loader does), e.g. ``audio_neg_inf_to_0``."""
        if count:
            self.counts[split][what]["fixed"] += int(count)
            log.info("[%s] %s: %d values", split, what, count)

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {s: {p: dict(a) for p, a in probs.items()} for s, probs in self.counts.items()}

    def total(self, split: str | None = None) -> int:
        splits = [split] if split else list(self.counts)
        return sum(n for s in splits for actions in self.counts.get(s, {}).values() for n in actions.values())

    def summarise(self, split: str) -> None:
        """Log one line per problem of ``split`` that was skipped/blanked/fixed."""
        for problem, actions in self.counts.get(split, {}).items():
            log.warning(
                "[%s] data %s: %s (examples: %s)",
                split,
                problem,
                dict(actions),
                self.examples[split].get(problem, [])[:2],
            )


def write_issue_counts(path: Path, counts: Mapping[str, Any]) -> None:
    """``data_issues.json``: {split: {problem: {action: count}}} (empty dict when the data was clean)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
