"""Build-time compatibility: a dataset's modalities, their encoders and the fusion, checked before anything is built.

DESIGN.md: "an incompatible pair ... is rejected when the model is built, with a message naming both
sides, never inside a training step". :func:`check_compatible` reads only declarations:

- the dataset's :class:`~src.spec.ModalitySpec` kinds;
- each encoder class: the kinds (and shapes: ``Encoder.refusal``) it takes (``accepts_kinds`` /
  ``kinds_for``) and what it
  returns (``Encoder.output_form``: vector, sequence, (C, H, W) maps or raw text);
- the fusion class: ``min_modalities`` / ``max_modalities``, ``accepts_sequences`` (sequences reach
  it as (B, T, D); any other fusion gets their masked mean), ``requires_sequences`` with
  ``min_sequences`` (MulT family: every modality not in ``fusion.extras`` is a sequence),
  ``text_option`` (MMBT: the option naming the modality it tokenizes) and ``image_maps_when``
  (CentralNet / layer fusion conv branches need (C, H, W) maps), ``depth_option`` (layer fusion: the
  merge stage must exist; dense branches, on any input that is not a map, have
  ``len(hidden_dims) + 1`` stages).

Every refusal is one :class:`~src.errors.IncompatibleError` naming the dataset's modality and kind,
the encoder or fusion on the other side, and what would work instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class

from src.errors import IncompatibleError
from src.models.encoders.base import (
    IDENTITY_SPEC,
    MAP,
    RAW_TEXT,
    SEQUENCE,
    IdentityEncoder,
    constructor_option,
    encoder_class,
)
from src.spec import DatasetSpec

#: a config's fusion wrapped by modality dropout (``fusion=moddrop``: its ``inner`` fusion decides)
WRAPPER_KEY = "inner"
#: encoders to suggest per modality kind (conf/encoder/<modality>/<name>.yaml)
SUGGESTED_ENCODERS = {
    "text": "hashing, tfidf_words, mean_glove, lstm, minilm (a vector) or glove_tokens, minilm_tokens (a sequence)",
    "image": "identity, mlp, lenet, cnn4, efficientnet_lite0",
    "sequence": "identity, projection (a sequence) or an RNN with vectors: null (a vector)",
    "vector": "identity, mlp",
}


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def _describe(spec: DatasetSpec, modality: str) -> str:
    ms = spec.modalities[modality]
    return f"dataset {spec.name}: modality {modality!r} (kind {ms.kind}, shape {list(ms.shape)})"


def encoder_forms(
    spec: DatasetSpec, encoders: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, tuple[str, str]]:
    """{modality: (encoder target, output form)}; refuses an encoder given a kind it does not take."""
    forms = {}
    for modality, ms in spec.modalities.items():
        options = dict(encoders.get(modality) or IDENTITY_SPEC)
        target = str(options.pop("_target_", IDENTITY_SPEC["_target_"]))
        cls = encoder_class(target)
        reason = cls.refusal(ms.kind, ms.shape, options)
        if reason:
            instead = (
                f"; for a {ms.kind} modality use encoder/{modality}= one of {SUGGESTED_ENCODERS[ms.kind]}"
                if ms.kind not in cls.kinds_for(options)
                else ""
            )
            raise IncompatibleError(
                f"{_describe(spec, modality)} cannot go through encoder {_short(target)} ({target}), which "
                f"{reason}{instead}"
            )
        forms[modality] = (target, cls.output_form(ms.kind, options))
    return forms


def fusion_class(fusion: Mapping[str, Any] | type) -> tuple[type, dict[str, Any]]:
    """The fusion class a config dict (or a class) names, and its options; ``fusion=moddrop`` is
    judged by its ``inner`` fusion (modality dropout changes no input requirement)."""
    if isinstance(fusion, type):
        return fusion, {}
    options = dict(fusion)
    if isinstance(options.get(WRAPPER_KEY), Mapping):
        inner = dict(options[WRAPPER_KEY])
        return get_class(inner.pop("_target_")), inner
    return get_class(options.pop("_target_")), options


def check_compatible(
    spec: DatasetSpec,
    fusion: Mapping[str, Any] | type,
    encoders: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> None:
    """Raise :class:`IncompatibleError` when ``spec``'s modalities, their ``encoders`` (modality ->
    encoder config, missing = identity) and ``fusion`` (a ``conf/fusion/`` dict or a class) cannot run
    together; see the module docstring for what is checked."""
    forms = encoder_forms(spec, dict(encoders or {}))
    cls, options = fusion_class(fusion)
    name = f"fusion {cls.__name__}"
    modalities = list(spec.modalities)
    low, high = getattr(cls, "min_modalities", 1), getattr(cls, "max_modalities", None)
    if len(modalities) < low or (high is not None and len(modalities) > high):
        wanted = (
            f"at least {low}" if high is None else f"{low} to {high}" if low != high else f"exactly {low}"
        )
        raise IncompatibleError(
            f"{name} takes {wanted} modalities; dataset {spec.name} has {len(modalities)} ({modalities}); "
            "choose a fusion for that many (concat, gmu with tied: false, ...) or select the modalities in data"
        )
    text_modality = options.get(cls.text_option) if getattr(cls, "text_option", None) else None
    if text_modality is not None and text_modality not in spec.modalities:
        raise IncompatibleError(
            f"{name}: fusion.{cls.text_option}={text_modality!r} is not a modality of dataset {spec.name} "
            f"({modalities}); set it to its text modality ({spec.of_kind('text') or 'none: use a text dataset'})"
        )
    for modality, (target, form) in forms.items():
        if form == RAW_TEXT and modality != text_modality:
            raise IncompatibleError(
                f"{_describe(spec, modality)} reaches {name} as raw strings (encoder {_short(target)}), which only "
                f"a fusion that tokenizes text takes (mmbt with text_modality: {modality}); give it an encoder "
                f"that makes features: encoder/{modality}= one of {SUGGESTED_ENCODERS['text']}"
            )
    if text_modality is not None:
        target, form = forms[text_modality]
        if spec.modalities[text_modality].kind != "text" or form not in (RAW_TEXT,):
            raise IncompatibleError(
                f"{_describe(spec, text_modality)} reaches {name} as a {form} from encoder {_short(target)}; "
                f"{cls.__name__} tokenizes raw text itself: use a text modality with encoder/{text_modality}=passthrough"
            )
    if getattr(cls, "requires_sequences", False):
        extras = list(options.get("extras") or ())
        unknown = [m for m in extras if m not in forms]
        if unknown:
            raise IncompatibleError(
                f"fusion.extras of {name} names {unknown}, which are not modalities of the data: "
                f"dataset {spec.name} has {list(forms)}"
            )
        for modality in extras:
            if modality in forms and forms[modality][1] == SEQUENCE:
                raise IncompatibleError(
                    f"{_describe(spec, modality)} is listed in fusion.extras of {name}, which takes extras as "
                    f"vectors, but encoder {_short(forms[modality][0])} returns a sequence; drop it from "
                    "fusion.extras or give it a vector encoder"
                )
        sequences = [m for m in modalities if m not in extras]
        not_sequences = [m for m in sequences if forms[m][1] != SEQUENCE]
        if not_sequences:
            first = not_sequences[0]
            raise IncompatibleError(
                f"{_describe(spec, first)} reaches {name} as a {forms[first][1]} (encoder "
                f"{_short(forms[first][0])}), but {cls.__name__} attends over (B, T, D) sequences: every modality "
                f"not in fusion.extras must be one ({not_sequences} are not). Instead: a sequence dataset (iemocap, "
                "mosi, mosei, synthetic_sequences), sequence encoders (e.g. encoder/text=minilm_tokens), "
                "fusion.extras for vector modalities (with at least "
                f"{getattr(cls, 'min_sequences', 1)} sequences left), or a vector fusion (concat, gmu, ...)"
            )
        low_sequences = getattr(cls, "min_sequences", 1)
        if len(sequences) < low_sequences:
            raise IncompatibleError(
                f"{name} needs at least {low_sequences} sequence modalities; dataset {spec.name} leaves "
                f"{sequences} after fusion.extras={extras}"
            )
    for option, value in getattr(cls, "image_maps_when", {}).items():
        if options.get(option) != value:
            continue
        flat = [m for m, (_, form) in forms.items() if form != MAP]
        if flat:
            first = flat[0]
            raise IncompatibleError(
                f"{_describe(spec, first)} reaches {name} as a {forms[first][1]} (encoder "
                f"{_short(forms[first][0])}), but fusion.{option}={value} convolves (C, H, W) maps of every "
                f"modality; use fusion.{option}=dense or auto, or image modalities with encoder identity or a "
                "CNN without fc_dims / global pooling"
            )
    depth = getattr(cls, "depth_option", None)
    if depth is not None:
        _check_depth(spec, cls, options, forms, depth)


def _check_depth(
    spec: DatasetSpec, cls: type, options: Mapping[str, Any], forms: Mapping[str, tuple[str, str]], depth: str
) -> None:
    """Layer fusion merges at stage ``fusion.<depth>``: it must exist on the branch the inputs get
    (dense unless every input is a (C, H, W) map of one shape; maps of a CNN have a shape known only
    once built, so those are left to the constructor)."""
    flat = [m for m, (_, form) in forms.items() if form != MAP]
    identity = all(encoder_class(target) is IdentityEncoder for target, _ in forms.values())
    shapes = {m: list(spec.modalities[m].shape) for m in forms}
    hidden_dims = list(constructor_option(cls, options, "hidden_dims") or ())
    conv_channels = list(constructor_option(cls, options, "conv_channels") or ())
    if flat:
        branch, why = "dense", f"modality {flat[0]!r} is a {forms[flat[0]][1]}"
    elif constructor_option(cls, options, "branch") == "dense":
        branch, why = "dense", "fusion.branch=dense"
    elif identity and len({tuple(s) for s in shapes.values()}) > 1:
        branch, why = "dense", f"the images differ in shape: {shapes}"
    elif identity:
        branch, why = "conv", f"conv_channels {conv_channels}"
    else:
        return
    stages = len(hidden_dims) + 1 + (len(conv_channels) if branch == "conv" else 0)
    layer = constructor_option(cls, options, depth)
    if not 0 <= int(layer) < stages:
        raise IncompatibleError(
            f"fusion {cls.__name__}: fusion.{depth}={layer} is not one of its {stages} {branch} stages on dataset "
            f"{spec.name} ({why}; hidden_dims {hidden_dims} + the output); set fusion.{depth} in "
            f"[0, {stages - 1}], add fusion.hidden_dims, or give it image modalities of one shape (conv stages)"
        )
