"""The one LightningModule: per-modality encoders -> fusion -> task loss, metrics and thresholds.

It receives only plain values and dicts and builds its own submodules, so a checkpoint reloads with
``FusionClassifier.load_from_checkpoint(path)`` under torch's weights-only unpickler.

Protocol guarantees (see README "Evaluation protocol"):
- predictions of a split are gathered over the whole epoch and all ranks, de-duplicated by sample
  index (DistributedSampler pads), then scored once by :mod:`src.metrics`;
- multilabel decision thresholds are tuned on the validation split during fitting only, stored in
  the ``decision_thresholds`` buffer (hence in every checkpoint) and applied unchanged to test.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from lightning import LightningModule
from torch import nn

from src.interpret import write_interpretability
from src.metrics import compute_metrics, multilabel_per_class, pearson
from src.models.acceleration import channels_last_batch, compile_in_place, compile_options
from src.models.encoders import build_encoder
from src.models.fusion import FusionOutput
from src.models.fusion.build import build_fusion, feature_shapes
from src.models.layers import masked_mean
from src.models.losses import build_loss
from src.spec import ModalitySpec
from src.tasks import MULTICLASS, MULTILABEL, REGRESSION
from src.thresholds import threshold_grid, tune_thresholds

CHECKPOINT_RUN_CONFIG_KEY = "mmfusion_run_config"


class FusionClassifier(LightningModule):
    """Encoders, fusion and head for one dataset's task; see the module docstring."""

    def __init__(
        self,
        task: str,
        num_outputs: int,
        class_names: list[str],
        modalities: Mapping[str, Mapping[str, Any]],
        fusion: Mapping[str, Any],
        head: Mapping[str, Any],
        loss: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        encoders: Mapping[str, Mapping[str, Any] | None] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        thresholds: Mapping[str, Any] | None = None,
        aux_loss_weight: float | Mapping[str, float] = 1.0,
        max_weight_norm: float | None = None,
        init_range: float | None = None,
        gate_units: Mapping[str, Any] | None = None,
        compile: bool | Mapping[str, Any] = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self._compile = compile_options(compile)  # a bad setting fails here, before training
        encoders = encoders or {}
        unknown = sorted(set(encoders) - set(modalities))
        if unknown:
            raise ValueError(
                f"model.encoders names modalities {unknown} that the dataset lacks; it has {sorted(modalities)}"
            )
        specs = {m: ModalitySpec.from_dict(plain) for m, plain in modalities.items()}
        self.encoders = nn.ModuleDict(
            {m: build_encoder(encoders.get(m), spec.shape, spec.kind) for m, spec in specs.items()}
        )
        self.fusion = build_fusion(
            fusion,
            input_dims={m: e.out_dim for m, e in self.encoders.items()},
            num_outputs=num_outputs,
            head=dict(head),
            task=task,
            input_shapes=feature_shapes(self.encoders),
        )
        if init_range is not None:
            self._uniform_init(init_range)
        self.criterion = build_loss(loss, task, num_outputs)
        self.threshold_cfg = {"strategy": "fixed", "value": 0.5, "metric": "f1_micro", **(thresholds or {})}
        threshold_grid(self.threshold_cfg.get("grid"))  # a bad grid fails here, before training
        self.register_buffer(
            "decision_thresholds", torch.full((num_outputs,), float(self.threshold_cfg["value"]))
        )
        self.run_config: dict[str, Any] | None = None
        self.output_dir: Path | None = None
        self._epoch_outputs: dict[str, list[dict[str, torch.Tensor]]] = defaultdict(list)
        #: the last epoch's gathered outputs per stage, for callbacks (src/utils/wandb_run.py)
        self.gathered: dict[str, dict[str, np.ndarray]] = {}

    # ----------------------------------------------------------------------------------- model
    def forward(self, batch: Mapping[str, Any]) -> FusionOutput:
        features, masks = {}, {}
        if self.hparams.channels_last:
            batch = channels_last_batch(batch)
        accepts_sequences = getattr(self.fusion, "accepts_sequences", False)
        for modality, encoder in self.encoders.items():
            feature, mask = encoder.encode(batch[modality], batch.get(f"{modality}_mask"))
            if encoder.returns_sequence and not accepts_sequences:
                feature = masked_mean(feature, mask)
            features[modality] = feature
            masks[modality] = mask
        return self.fusion(features, masks)

    def _uniform_init(self, width: float) -> None:
        """Weights ~ U(-width/2, width/2), biases 0, for every linear and convolutional layer of the fusion,
        the head and the encoders without pretrained weights (the GMU paper's "initialization ranges",
        Sec. 4.2; a range of width ``width`` as Blocks' ``Uniform(width=...)``, the framework it names)."""
        if not width > 0:
            raise ValueError(f"model.init_range={width} must be > 0")
        trained_here = [
            self.fusion,
            *(e for e in self.encoders.values() if not getattr(e, "pretrained", False)),
        ]
        with torch.no_grad():
            for part in trained_here:
                for layer in part.modules():
                    if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d):
                        layer.weight.uniform_(-width / 2, width / 2)
                        if layer.bias is not None:
                            layer.bias.zero_()

    def configure_model(self) -> None:
        """``model.compile`` and ``model.channels_last`` (src/models/acceleration.py), once, on the
        trainer's device."""
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        if self._compile is not None:
            compile_in_place([*self.encoders.values(), self.fusion], self._compile)
            self._compile = None

    def on_fit_start(self) -> None:
        """Fit data-dependent encoders (TF-IDF) on the training split's raw inputs, never on val/test."""
        fitted = [m for m, encoder in self.encoders.items() if encoder.requires_fit]
        if fitted:
            train_set = self.trainer.datamodule.train_dataloader().dataset
            for modality in fitted:
                self.encoders[modality].fit(train_set.column(modality))

    def predict_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities for classification, the raw outputs for regression."""
        task = self.hparams.task
        if task == MULTILABEL:
            return torch.sigmoid(logits)
        if task == MULTICLASS:
            return torch.softmax(logits, dim=-1)
        return logits

    def _loss(
        self, output: FusionOutput, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        main = self.criterion(output.logits, labels)
        parts = {"loss_main": main}
        total = main
        weights = self.hparams.aux_loss_weight
        for modality, aux in output.aux_logits.items():
            parts[f"loss_{modality}"] = self.criterion(aux, labels)
            if isinstance(weights, Mapping) and modality not in weights:
                raise KeyError(
                    f"model.aux_loss_weight has no beta for {modality!r}; it has {sorted(weights)}"
                )
            beta = weights[modality] if isinstance(weights, Mapping) else weights
            total = total + beta * parts[f"loss_{modality}"]
        return total, parts

    # -------------------------------------------------------------------------------- training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        output = self(batch)
        loss, parts = self._loss(output, batch["labels"])
        batch_size = batch["labels"].shape[0]
        self.log(
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=True,
        )
        if len(parts) > 1:
            self.log_dict(
                {f"train/{k}": v for k, v in parts.items()},
                on_epoch=True,
                batch_size=batch_size,
                sync_dist=True,
            )
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Max-norm constraint on every linear unit's incoming weights (Arevalo et al. 2017, Sec. 4.1)."""
        if self.hparams.max_weight_norm is None:
            return
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    module.weight.renorm_(p=2, dim=0, maxnorm=self.hparams.max_weight_norm)

    def _eval_step(self, stage: str, batch: Mapping[str, Any]) -> None:
        output = self(batch)
        loss, _ = self._loss(output, batch["labels"])
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=batch["labels"].shape[0], sync_dist=True)
        record = {
            "scores": self.predict_scores(output.logits).detach().float(),
            "targets": batch["labels"].detach(),
            "index": batch["index"].detach(),
        }
        record.update({f"interpret/{k}": v.detach().float() for k, v in output.interpret.items()})
        if stage == "test":
            record.update({k: v for k, v in batch.items() if k.startswith("latent") and torch.is_tensor(v)})
        self._epoch_outputs[stage].append(record)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def _gather_epoch(self, stage: str) -> dict[str, np.ndarray]:
        """Concatenate the epoch's records over batches and ranks; drop sampler padding by index."""
        records = self._epoch_outputs.pop(stage, [])
        if not records:
            return {}
        merged = {k: torch.cat([r[k] for r in records]) for k in records[0]}
        if self.trainer.world_size > 1:
            merged = {k: self.all_gather(v).flatten(0, 1) for k, v in merged.items()}
        _, first = np.unique(merged["index"].cpu().numpy(), return_index=True)
        self.gathered[stage] = {k: v.cpu().numpy()[first] for k, v in merged.items()}
        return self.gathered[stage]

    def _score(self, stage: str, gathered: Mapping[str, np.ndarray]) -> dict[str, float]:
        task = self.hparams.task
        scores, targets = gathered["scores"], gathered["targets"]
        if task == MULTILABEL:
            if stage == "val" and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
                tuned = tune_thresholds(scores, targets, **self.threshold_cfg)
                self.decision_thresholds.copy_(torch.as_tensor(tuned, dtype=self.decision_thresholds.dtype))
            return compute_metrics(task, scores, targets, self.decision_thresholds.cpu().numpy())
        if task == REGRESSION:
            return compute_metrics(task, scores.squeeze(-1), targets.squeeze(-1))
        return compute_metrics(task, scores, targets)

    def on_validation_epoch_end(self) -> None:
        gathered = self._gather_epoch("val")
        if gathered:
            self.log_dict({f"val/{k}": v for k, v in self._score("val", gathered).items()}, prog_bar=False)

    def on_test_epoch_end(self) -> None:
        gathered = self._gather_epoch("test")
        if not gathered:
            return
        metrics = {f"test/{k}": v for k, v in self._score("test", gathered).items()}
        gates = gathered.get("interpret/gates")
        if gates is not None and "latent" in gathered:
            metrics["test/gate_corr_latent"] = pearson(
                gates[:, 0].reshape(len(gates), -1).mean(1), gathered["latent"]
            )
        self.log_dict(metrics)
        if self.trainer.is_global_zero and self.output_dir is not None:
            self._write_test_artifacts(gathered)

    # ----------------------------------------------------------------------------- artifacts
    def _write_test_artifacts(self, gathered: Mapping[str, np.ndarray]) -> None:
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        class_names = list(self.hparams.class_names)
        thresholds = self.decision_thresholds.cpu().numpy()
        if self.hparams.task == MULTILABEL:
            (out / "thresholds.json").write_text(
                json.dumps(
                    {
                        "strategy": self.threshold_cfg["strategy"],
                        "thresholds": dict(zip(class_names, thresholds.tolist(), strict=True)),
                    },
                    indent=2,
                )
            )
            rows = multilabel_per_class(gathered["scores"], gathered["targets"], thresholds, class_names)
            with open(out / "per_class_test.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        ids = self._sample_ids(gathered["index"])
        interpret = {k.split("/", 1)[1]: v for k, v in gathered.items() if k.startswith("interpret/")}
        if interpret:
            np.savez_compressed(
                out / "interpret_test.npz",
                ids=np.asarray(ids),
                modalities=np.asarray(self.fusion.modalities),
                **interpret,
            )
        learned = self.fusion.interpretation()
        if learned:
            (out / "interpretation.json").write_text(json.dumps(learned, indent=2))
        write_interpretability(
            out,
            self._predicted(gathered["scores"]),
            interpret,
            learned,
            self.fusion.modalities,
            class_names,
            self.loggers,
            gate_units=self.hparams.gate_units,
        )

    def _predicted(self, scores: np.ndarray) -> np.ndarray | None:
        """(N, C) boolean predicted classes: thresholds (multilabel), argmax (multiclass); None for regression."""
        if self.hparams.task == MULTILABEL:
            return scores >= self.decision_thresholds.cpu().numpy()
        if self.hparams.task == MULTICLASS:
            return np.eye(scores.shape[1], dtype=bool)[scores.argmax(1)]
        return None

    def _sample_ids(self, indices: np.ndarray) -> list[str]:
        dataset = self.trainer.test_dataloaders.dataset
        return [dataset.ids[i] for i in indices.tolist()]

    # ---------------------------------------------------------------------------- optimisers
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = instantiate(dict(self.hparams.optimizer), params=self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        options = dict(self.hparams.scheduler)
        lr_scheduler = {
            "interval": options.pop("interval", "epoch"),
            "frequency": options.pop("frequency", 1),
        }
        monitor = options.pop("monitor", None)
        if monitor:
            lr_scheduler["monitor"] = monitor
        lr_scheduler["scheduler"] = instantiate(options, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_RUN_CONFIG_KEY] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.run_config = checkpoint.get(CHECKPOINT_RUN_CONFIG_KEY)
