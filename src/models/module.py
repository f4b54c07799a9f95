"""The one LightningModule: per-modality encoders -> fusion -> task loss, metrics and thresholds.

It receives only plain values and dicts and builds its own submodules, so a checkpoint reloads with
``FusionClassifier.load_from_checkpoint(path)`` under torch's weights-only unpickler. It never reaches
into the trainer's datasets; the files a test run writes (thresholds, per-class tables, interpret
arrays, figures) and dataset-specific diagnostics are callbacks (:mod:`src.callbacks`) reading
``gathered``.

Protocol guarantees (see README "Evaluation protocol"):
- predictions of a split are gathered over the whole epoch and all ranks, de-duplicated by sample
  index (DistributedSampler pads), then scored once by :mod:`src.metrics`;
- multilabel decision thresholds are tuned on the validation split during fitting only, stored in
  the ``decision_thresholds`` buffer (hence in every checkpoint) and applied unchanged to test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from lightning import LightningModule
from torch import nn

from src.errors import CheckpointError
from src.metrics import compute_metrics
from src.models.acceleration import channels_last_batch, compile_in_place, compile_options
from src.models.encoders.base import state_sha256
from src.models.fusion import FusionOutput
from src.models.losses import build_loss
from src.models.model import build_model
from src.spec import DatasetSpec, ModalitySpec
from src.tasks import MULTILABEL, REGRESSION, TaskLink
from src.thresholds import threshold_grid, tune_thresholds
from src.utils.checkpoints import upgrade_fusion_config

#: the checkpoint entry naming the frozen pretrained encoders whose weights it references instead of
#: storing them: {modality: {"sha256": state digest, "provenance": the encoder's provenance}}
REFERENCED_WEIGHTS_KEY = "mmfusion_referenced_weights"

#: state-dict prefixes of earlier layouts -> today's (the plain model moved into ``self.model``)
LEGACY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("encoders.", "model.encoders."),
    ("fusion.", "model.fusion."),
)


#: submodules that moved when fusions became fusion layers + a head (old prefix -> new): the ModDrop
#: wrapper's ``inner`` fusion is the fusion itself, a fusion layer's head is the model's, FGMU's unit
#: is named as the GMU's. Only
#: applied where the module has the new key and lacks the old one (a predictor keeps its ``head``).
MOVED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("model.fusion.inner.", "model.fusion."),
    ("model.fusion.head.", "model.head."),
    ("model.fusion.fgmu.", "model.fusion.gmu."),  # FGMUFusion is GMUFusion with the FGMU unit
)


def _renamed(key: str, rules: Sequence[tuple[str, str]]) -> list[str]:
    """``key`` and every key reached from it by applying ``rules`` in order (each at most once)."""
    keys = [key]
    for old, new in rules:
        keys += [new + k[len(old) :] for k in keys if k.startswith(old)]
    return keys


def upgrade_state_dict(
    state_dict: Mapping[str, Any], expected: Collection[str] | None = None
) -> dict[str, Any]:
    """``state_dict`` with the keys of earlier checkpoint layouts renamed to today's, so checkpoints
    written before the plain-model refactor (:data:`LEGACY_PREFIXES`) and before the head left the
    fusion (:data:`MOVED_PREFIXES`, given the module's own keys ``expected``) still load."""
    upgraded = {}
    for key, value in state_dict.items():
        for old, new in LEGACY_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if expected is not None and key not in expected:
            key = next((k for k in _renamed(key, MOVED_PREFIXES) if k in expected), key)
        upgraded[key] = value
    return upgraded


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
        compile: bool | Mapping[str, Any] = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        fusion = upgrade_fusion_config(fusion)  # before it is saved: a resumed old run saves today's form
        self.save_hyperparameters(logger=False)
        self._compile = compile_options(compile)  # a bad setting fails here, before training
        spec = DatasetSpec(
            "dataset", task, tuple(class_names), {m: ModalitySpec.from_dict(p) for m, p in modalities.items()}
        )
        if spec.num_outputs != num_outputs:
            raise ValueError(
                f"num_outputs={num_outputs}, but task {task} with classes {class_names} has {spec.num_outputs}"
            )
        self.model = build_model(spec, fusion, head, encoders)
        if init_range is not None:
            self._uniform_init(init_range)
        #: frozen pretrained encoders (``Encoder.weights_from_source``) and their state's sha256 as
        #: built: checkpoints reference these weights, a load checks and rebuilds them from the source
        self.referenced_weights = {
            m: state_sha256(e) for m, e in self.encoders.items() if e.weights_from_source and e.state_dict()
        }
        self.criterion = build_loss(loss, task, num_outputs)
        self.threshold_cfg = {"strategy": "fixed", "value": 0.5, "metric": "f1_micro", **(thresholds or {})}
        threshold_grid(self.threshold_cfg.get("grid"))  # a bad grid fails here, before training
        self.register_buffer(
            "decision_thresholds", torch.full((num_outputs,), float(self.threshold_cfg["value"]))
        )
        self._epoch_outputs: dict[str, list[dict[str, torch.Tensor]]] = defaultdict(list)
        #: the last epoch's gathered records per stage (scores, targets, index, interpret/*), for
        #: callbacks (src/callbacks.py, src/utils/wandb_run.py)
        self.gathered: dict[str, dict[str, np.ndarray]] = {}

    # ----------------------------------------------------------------------------------- model
    @property
    def encoders(self) -> nn.ModuleDict:
        return self.model.encoders

    @property
    def fusion(self) -> nn.Module:
        return self.model.fusion

    @property
    def head(self) -> nn.Module | None:
        """The head after a fusion layer (None for a predictor, whose outputs are its own)."""
        return self.model.head

    def forward(self, batch: Mapping[str, Any]) -> FusionOutput:
        if self.hparams.channels_last:
            batch = channels_last_batch(batch)
        return self.model(batch)

    def _uniform_init(self, width: float) -> None:
        """Weights ~ U(-width/2, width/2), biases 0, for every linear and convolutional layer of the fusion,
        the head and the encoders without pretrained weights (the GMU paper's "initialization ranges",
        Sec. 4.2; a range of width ``width`` as Blocks' ``Uniform(width=...)``, the framework it names)."""
        if not width > 0:
            raise ValueError(f"model.init_range={width} must be > 0")
        trained_here = [
            self.fusion,
            *([] if self.head is None else [self.head]),
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
            parts = [*self.encoders.values(), self.fusion, *([] if self.head is None else [self.head])]
            compile_in_place(parts, self._compile)
            self._compile = None

    def predict_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities for classification, the raw outputs for regression (the task link)."""
        return TaskLink(self.hparams.task).to_scores(logits)

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

    def _eval_step(self, stage: str, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        output = self(batch)
        loss, _ = self._loss(output, batch["labels"])
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=batch["labels"].shape[0], sync_dist=True)
        record = {
            "scores": self.predict_scores(output.logits).detach().float(),
            "targets": batch["labels"].detach(),
            "index": batch["index"].detach(),
        }
        record.update({f"interpret/{k}": v.detach().float() for k, v in output.interpret.items()})
        record.update({f"interpret/{k}": v.detach().float() for k, v in output.interpret.items()})
        self._epoch_outputs[stage].append(record)
        return record

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """The batch's record (scores, targets, index, interpret/*): callbacks see it in ``on_test_batch_end``."""
        return self._eval_step("test", batch)

    def gather_by_index(self, records: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, np.ndarray]:
        """Concatenate per-batch records (each with an ``index``) over batches and ranks, drop the
        sampler's padding by sample index and sort by it; {} when there are none."""
        if not records:
            return {}
        merged = {k: torch.cat([r[k] for r in records]) for k in records[0]}
        if self.trainer.world_size > 1:
            merged = {k: self.all_gather(v).flatten(0, 1) for k, v in merged.items()}
        _, first = np.unique(merged["index"].cpu().numpy(), return_index=True)
        return {k: v.cpu().numpy()[first] for k, v in merged.items()}

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
        gathered = self.gathered["val"] = self.gather_by_index(self._epoch_outputs.pop("val", []))
        if gathered:
            self.log_dict({f"val/{k}": v for k, v in self._score("val", gathered).items()}, prog_bar=False)

    def on_test_epoch_end(self) -> None:
        gathered = self.gathered["test"] = self.gather_by_index(self._epoch_outputs.pop("test", []))
        if gathered:
            self.log_dict({f"test/{k}": v for k, v in self._score("test", gathered).items()})

    def predicted(self, scores: np.ndarray) -> np.ndarray | None:
        """(N, C) boolean predicted classes: thresholds (multilabel), argmax (multiclass); None for regression."""
        return TaskLink(self.hparams.task).predicted(scores, self.decision_thresholds.cpu().numpy())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Frozen pretrained encoders are referenced (provenance + sha256), not stored: a checkpoint
        holds what was trained (issue 17: MiniLM alone is ~90 MB per file)."""
        state = checkpoint["state_dict"]
        for modality in self.referenced_weights:
            prefix = f"model.encoders.{modality}."
            for key in [k for k in state if k.startswith(prefix)]:
                del state[key]
        checkpoint[REFERENCED_WEIGHTS_KEY] = {
            m: {"sha256": digest, "provenance": self.encoders[m].provenance}
            for m, digest in self.referenced_weights.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints of earlier layouts load unchanged (:func:`upgrade_state_dict`); referenced
        encoder weights come from this module, which rebuilt them from their source, once their
        sha256 matches the one the checkpoint was trained with."""
        state = upgrade_state_dict(checkpoint["state_dict"], self.state_dict().keys())
        for modality, reference in (checkpoint.get(REFERENCED_WEIGHTS_KEY) or {}).items():
            built = self.referenced_weights.get(modality)
            if built != reference["sha256"]:
                found = "no frozen pretrained encoder" if built is None else f"weights of sha256 {built}"
                raise CheckpointError(
                    f"the checkpoint references the frozen weights of model.encoders.{modality} "
                    f"({reference['provenance']}, state sha256 {reference['sha256']}) instead of storing "
                    f"them, but this installation builds {found} for it: install or point at the same "
                    "pretrained files (encoders.json of the run names them)"
                )
            prefix = f"model.encoders.{modality}."
            state.update({prefix + k: v for k, v in self.encoders[modality].state_dict().items()})
        checkpoint["state_dict"] = state

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
