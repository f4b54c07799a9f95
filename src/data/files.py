"""What the file-backed datasets share: a root folder, the bad-input policy, the media pre-flight.

``FileDataModule`` adds to :class:`src.data.base.FusionDataModule`:

- ``issues``: the :class:`src.data.issues.IssueLog` that applies ``data.on_problem`` and counts;
  ``issue_counts`` is what ``src.train`` writes to ``data_issues.json``;
- ``verify_media``: decode every media file (MM-IMDb's posters) when a split is loaded, so that
  training never meets a broken one (the pre-flight). ``src.data.check`` turns it off: it decodes
  each file itself while it reads every sample, and once is enough.

Frozen-encoder features are not made here: the feature step (:mod:`src.precompute`) computes them
and hands them to the DataModule through ``use_features``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from src.data.base import FusionDataModule
from src.data.issues import IssueLog
from src.data.lazy import LazyDataset


class FileDataModule(FusionDataModule):
    """Base of the datasets read from published files (see the module docstring)."""

    def __init__(
        self,
        on_problem: Mapping[str, str] | None = None,
        report_problems: bool = False,
        verify_media: bool = True,
        **loader_options,
    ) -> None:
        super().__init__(**loader_options)
        self.issues = IssueLog(on_problem, report=report_problems)
        self.verify_media = verify_media

    @property
    def issue_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{split: {problem: {action: count}}} of everything skipped, blanked or fixed so far."""
        return self.issues.as_dict()

    def _validated_split(self, split: str) -> LazyDataset:
        fresh = split not in self._validated
        dataset = super()._validated_split(split)
        if fresh:
            self.issues.summarise(split)
        return dataset


def finite_or_problem(
    issues: IssueLog, split: str, where: str, array: np.ndarray
) -> tuple[np.ndarray, str | None]:
    """Apply the ``nonfinite`` policy to one array: returns (array, None | 'skip' | 'blank')."""
    if np.isfinite(array).all():
        return array, None
    action = issues.problem(split, "nonfinite", f"{where}: {int((~np.isfinite(array)).sum())} NaN/inf values")
    return (
        (np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0), action)
        if action == "blank"
        else (array, action)
    )
