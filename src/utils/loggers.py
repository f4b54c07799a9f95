"""Logger fixes for the ways this repo runs Lightning.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it is created, and starts with an
empty header. Under ``ddp_spawn`` every ``fit``/``validate``/``test`` call unpickles a fresh writer in
new processes, so the final validation/test rows either wiped the training rows or crashed on
unknown columns. :class:`CSVLogger` here continues the file of its own run directory instead.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class AppendingExperimentWriter(ExperimentWriter):
    """Keeps the rows and columns of an existing ``metrics.csv`` and appends to it.

    The header is re-read before every save, because a writer unpickled into a spawned process may
    hold a stale list of columns.
    """

    def _check_log_dir_exists(self) -> None:
        self._merge_existing_keys()

    def _merge_existing_keys(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                existing = csv.DictReader(handle).fieldnames or []
            self.metrics_keys = sorted(set(self.metrics_keys) | set(existing))

    def _record_new_keys(self) -> set[str]:
        self._merge_existing_keys()
        return super()._record_new_keys()


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger with :class:`AppendingExperimentWriter` (safe across spawned stages)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
