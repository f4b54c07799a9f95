"""Lightning callbacks: what a run writes besides its metrics, and dataset-specific diagnostics.

The LightningModule owns the loss, the epoch evaluation gathered by sample index and the decision
thresholds; these callbacks read what it gathered (``FusionClassifier.gathered["test"]``, its
``decision_thresholds`` and the batches' sample ids) and write files. They are composed from
``conf/callbacks/`` (``artifacts.yaml``, included by ``default.yaml``; the synthetic latent-gate
correlation by ``data=synthetic_gmu``'s defaults list), so ``callbacks=none`` writes none of them.

- :class:`SelectedCheckpoint`: the checkpoint selected on the monitor and ``last.ckpt`` after every
  epoch, one file (hard-linked) when they are the same epoch.
- :class:`RunConfigInCheckpoint`: the resolved run config inside every checkpoint (``src.eval`` and
  ``src.ensemble`` rebuild the data from it); ``src.train`` adds it, it is not a config option.
- :class:`TestPredictions`: ``thresholds.json`` and ``per_class_test.csv`` (multilabel), and
  ``interpret_test.npz`` (the fusion's per-sample interpret tensors with the sample ids).
- :class:`Interpretation`: ``interpretation.json`` (learned weights such as CentralNet's alphas)
  and the figures of :mod:`src.interpret` (GMU paper Figure 8 gate shares, CentralNet Figure 3).
- :class:`LatentGateCorrelation`: ``test/gate_corr_latent``, the GMU paper's synthetic check
  (Arevalo et al. 2017, Sec. 5.1): the Pearson correlation of the first modality's mean gate with
  the generative model's latent variable (the paper reports 1.0).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from src.interpret import write_interpretability
from src.metrics import multilabel_per_class, pearson
from src.tasks import MULTILABEL
from src.utils.checkpoints import link_checkpoint

#: the key of the run config in every checkpoint ``src.train`` writes
CHECKPOINT_RUN_CONFIG_KEY = "mmfusion_run_config"


class SelectedCheckpoint(ModelCheckpoint):
    """The checkpoint(s) selected on the monitor (``save_top_k``), and ``last.ckpt``, the newest
    epoch's full training state (``ckpt_path=<run>/checkpoints/last.ckpt`` resumes), after every epoch.

    When the newest epoch is also the selected one, ``last.ckpt`` is a hard link of the selected
    file (:func:`src.utils.checkpoints.link_checkpoint`): one copy of that state on disk, not two.
    Lightning's own ``save_last`` does not fit: ``True`` writes ``last.ckpt`` only at epochs that
    improve the monitor, ``"link"`` points it at the selected checkpoint even when that is older.
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.pop("save_last", None):
            raise ValueError("SelectedCheckpoint writes last.ckpt itself; leave save_last unset")
        super().__init__(save_last=False, **kwargs)

    def _save_topk_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        self._save_newest(trainer, monitor_candidates)

    def _save_newest(self, trainer: Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        selected_now = self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved
        self.last_model_path = path  # part of the state the next save records
        if selected_now and self._last_checkpoint_saved != path:
            if trainer.is_global_zero:
                link_checkpoint(Path(self._last_checkpoint_saved), Path(path))
            trainer.strategy.barrier("SelectedCheckpoint.link")
        else:
            self._save_checkpoint(trainer, path)


class RunConfigInCheckpoint(Callback):
    """Store ``run_config`` (plain, resolved) under :data:`CHECKPOINT_RUN_CONFIG_KEY` in every checkpoint."""

    def __init__(self, run_config: Mapping[str, Any]) -> None:
        self.run_config = dict(run_config)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CHECKPOINT_RUN_CONFIG_KEY] = self.run_config


class EveryTestBatch(Callback):
    """Hands every test batch (and the step's outputs) to :meth:`record`; :meth:`reset` at each test epoch start."""

    def reset(self) -> None:
        raise NotImplementedError

    def record(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.reset()

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Mapping[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.record(outputs, batch)


class _TestFiles(Callback):
    """A callback writing into ``output_dir`` (created on use) from rank zero after testing."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        outputs = getattr(pl_module, "gathered", {}).get("test")
        if trainer.is_global_zero and outputs:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.write(trainer, pl_module, outputs)

    def write(self, trainer: Trainer, pl_module: LightningModule, outputs: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError


class TestPredictions(_TestFiles, EveryTestBatch):
    """``thresholds.json`` + ``per_class_test.csv`` (multilabel) and ``interpret_test.npz``."""

    def __init__(self, output_dir: str | Path) -> None:
        super().__init__(output_dir)
        self._ids: dict[int, str] = {}

    def reset(self) -> None:
        self._ids = {}

    def record(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        self._ids.update(zip(batch["index"].tolist(), batch["ids"], strict=True))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Every rank saw its own samples: the ids of all of them (a collective call on every rank)."""
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            shards: list[dict[int, str] | None] = [None] * trainer.world_size
            torch.distributed.all_gather_object(shards, self._ids)
            self._ids = {i: sample for shard in shards for i, sample in (shard or {}).items()}

    def write(self, trainer: Trainer, pl_module: LightningModule, outputs: Mapping[str, np.ndarray]) -> None:
        out = self.output_dir
        class_names = list(pl_module.hparams.class_names)
        if pl_module.hparams.task == MULTILABEL:
            thresholds = pl_module.decision_thresholds.cpu().numpy()
            record = {
                "strategy": pl_module.threshold_cfg["strategy"],
                "thresholds": dict(zip(class_names, thresholds.tolist(), strict=True)),
            }
            (out / "thresholds.json").write_text(json.dumps(record, indent=2))
            rows = multilabel_per_class(outputs["scores"], outputs["targets"], thresholds, class_names)
            with open(out / "per_class_test.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        interpret = interpret_outputs(outputs)
        if interpret:
            np.savez_compressed(
                out / "interpret_test.npz",
                ids=np.asarray([self._ids[i] for i in outputs["index"].tolist()]),
                modalities=np.asarray(pl_module.fusion.modalities),
                **interpret,
            )


class Interpretation(_TestFiles):
    """``interpretation.json`` and the figures of :mod:`src.interpret`; ``gate_units`` chooses the
    units Figure 8 averages (``selection: all | mutual_information``, ``top_k``, ``bins``)."""

    def __init__(self, output_dir: str | Path, gate_units: Mapping[str, Any] | None = None) -> None:
        super().__init__(output_dir)
        self.gate_units = dict(gate_units or {})

    def write(self, trainer: Trainer, pl_module: LightningModule, outputs: Mapping[str, np.ndarray]) -> None:
        learned = pl_module.fusion.interpretation()
        if learned:
            (self.output_dir / "interpretation.json").write_text(json.dumps(learned, indent=2))
        write_interpretability(
            self.output_dir,
            pl_module.predicted(outputs["scores"]),
            interpret_outputs(outputs),
            learned,
            pl_module.fusion.modalities,
            list(pl_module.hparams.class_names),
            trainer.loggers,
            gate_units=self.gate_units,
        )


class LatentGateCorrelation(EveryTestBatch):
    """``test/gate_corr_latent``: Pearson r of the first modality's mean gate with ``batch["latent"]``
    over the test split (the module's gathered gates, matched to the latents by sample index)."""

    def __init__(self) -> None:
        self._records: list[dict[str, torch.Tensor]] = []

    def reset(self) -> None:
        self._records = []

    def record(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        gates = (outputs or {}).get("interpret/gates")
        if gates is not None and torch.is_tensor(batch.get("latent")):
            self._records.append(
                {
                    "gate": gates[:, 0].reshape(len(gates), -1),
                    "latent": batch["latent"].detach(),
                    "index": batch["index"].detach(),
                }
            )

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        gathered = pl_module.gather_by_index(self._records)
        if gathered:
            pl_module.log("test/gate_corr_latent", pearson(gathered["gate"].mean(1), gathered["latent"]))


def interpret_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fusion's interpret tensors among the gathered test outputs (``interpret/<name>`` keys)."""
    return {k.split("/", 1)[1]: v for k, v in outputs.items() if k.startswith("interpret/")}
