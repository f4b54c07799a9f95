"""The perturbation library (src/robustness/perturbations.py): identity at level 0, per-sample seeding
(batch size, order and padding change nothing), expected values on tiny tensors, and the registry's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from src.robustness.perturbations import (
    KEYBOARD_NEIGHBOURS,
    KINDS,
    PERTURBATIONS,
    MeanAccumulator,
    PerturbationError,
    SampleContext,
    blur,
    blur_matrix,
    brightness_loss,
    contrast_loss,
    derive_seed,
    gaussian_noise,
    get_perturbation,
    missing,
    missing_mask,
    occlusion,
    perturb_batch,
    ratio_for_snr_db,
    snr_db,
    timestep_dropout,
    typo,
    typos,
    word_dropout,
    word_shuffle,
)
from src.spec import MODALITY_KINDS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INDEX = [10, 11, 12, 13, 14, 15]
LENGTHS = [5, 3, 1, 4, 2, 5]
PAD = 7.0  # the padding value of the sequence batch: no perturbation may touch it
TEXTS = [
    "the quick brown fox jumps",
    "a  gated   unit",  # irregular spacing: kept when the sample is left unchanged
    "Hello world again",
    "one two three four five six",
    "x y z",
    "multimodal fusion of images and text",
]


def sequence_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    value = torch.full((6, 5, 3), PAD)
    mask = torch.arange(5)[None, :] < torch.tensor(LENGTHS)[:, None]
    value[mask] = torch.randn(int(mask.sum()), 3, generator=g)
    return value, mask


def batch_of(kind: str) -> tuple[object, torch.Tensor | None, torch.Tensor | None]:
    """(value, mask, training mean) of a 6-sample batch of ``kind``."""
    g = torch.Generator().manual_seed(1)
    if kind == "text":
        return list(TEXTS), None, None
    if kind == "sequence":
        value, mask = sequence_batch()
        return value, mask, torch.tensor([0.5, -1.0, 2.0])
    shape = {"vector": (6, 5), "image": (6, 2, 7, 9), "audio": (6, 40)}[kind]
    mean = {
        "vector": torch.arange(5.0),
        "image": torch.tensor([1.0, -1.0])[:, None, None],
        "audio": torch.ones(40),
    }
    return torch.randn(*shape, generator=g) + 0.3, None, mean[kind]


def cases() -> list[tuple[str, str]]:
    return [(name, kind) for name, p in sorted(PERTURBATIONS.items()) for kind in p.kinds]


def strong(name: str) -> float:
    p = PERTURBATIONS[name]
    return p.max_level if p.max_level is not None else 2.0


def ctx(index=INDEX, mask=None, mean=None, seed=3) -> SampleContext:
    return SampleContext(seed=seed, index=index, mask=mask, mean=mean)


def rows(value: object, selection: list[int]) -> object:
    return [value[i] for i in selection] if isinstance(value, list) else value[selection]


def same(a: object, b: object) -> bool:
    return a == b if isinstance(a, list) else torch.equal(a, b)


@pytest.mark.parametrize("name,kind", cases())
def test_level_zero_is_the_identity_object(name: str, kind: str):
    value, mask, mean = batch_of(kind)
    out = PERTURBATIONS[name](value, 0, ctx(mask=mask, mean=mean))
    assert out.value is value and out.mask is mask


@pytest.mark.parametrize("name,kind", cases())
def test_a_positive_level_perturbs_deterministically(name: str, kind: str):
    value, mask, mean = batch_of(kind)
    level = strong(name)
    first = PERTURBATIONS[name](value, level, ctx(mask=mask, mean=mean))
    again = PERTURBATIONS[name](value, level, ctx(mask=mask, mean=mean))
    assert not same(first.value, value)
    assert same(first.value, again.value)
    if mask is not None:  # the padding is never touched
        assert (first.value[~mask] == PAD).all()


@pytest.mark.parametrize("name,kind", cases())
def test_results_do_not_depend_on_batch_size_order_or_padding(name: str, kind: str):
    value, mask, mean = batch_of(kind)
    level = 0.6 if PERTURBATIONS[name].max_level else 0.8
    whole = PERTURBATIONS[name](value, level, ctx(mask=mask, mean=mean))
    order = [4, 1, 5, 0, 3]
    shuffled = PERTURBATIONS[name](
        rows(value, order), level, ctx([INDEX[i] for i in order], None if mask is None else mask[order], mean)
    )
    assert same(shuffled.value, rows(whole.value, order))
    for i in range(6):
        if mask is None:
            alone = PERTURBATIONS[name](rows(value, [i]), level, ctx([INDEX[i]], None, mean))
            assert same(alone.value, rows(whole.value, [i]))
        else:  # alone, the sequence has no padding at all
            n = LENGTHS[i]
            alone = PERTURBATIONS[name](
                value[i : i + 1, :n], level, ctx([INDEX[i]], mask[i : i + 1, :n], mean)
            )
            assert torch.equal(alone.value[0], whole.value[i, :n])
            assert torch.equal(alone.mask[0], whole.mask[i, :n])


DETERMINISTIC = {"blur", "contrast_loss", "brightness_loss"}


@pytest.mark.parametrize("name,kind", [c for c in cases() if c[0] not in DETERMINISTIC])
def test_the_seed_changes_the_draws(name: str, kind: str):
    value, mask, mean = batch_of(kind)
    level = 0.5 if PERTURBATIONS[name].max_level else 1.0
    outs = [PERTURBATIONS[name](value, level, ctx(mask=mask, mean=mean, seed=s)).value for s in range(4)]
    assert any(not same(outs[0], other) for other in outs[1:])


def test_every_dataset_kind_has_missing_noise_and_its_own_perturbations():
    assert set(MODALITY_KINDS) <= set(KINDS)
    for kind in KINDS:
        names = {n for n, p in PERTURBATIONS.items() if kind in p.kinds}
        assert any(n.startswith("missing") for n in names), kind
        assert len(names) >= 2, kind
    assert {"blur", "occlusion", "contrast_loss", "brightness_loss", "gaussian_noise"} <= {
        n for n, p in PERTURBATIONS.items() if "image" in p.kinds
    }


# ---- errors ---------------------------------------------------------------------------------


def test_unknown_perturbation_names_itself_the_modality_its_kind_and_the_known_names():
    with pytest.raises(PerturbationError) as err:
        get_perturbation("blurr", "image", "image")
    message = str(err.value)
    assert "'blurr'" in message and "'image'" in message and "kind image" in message
    assert "gaussian_noise" in message and "word_dropout" in message


def test_inadmissible_kind_names_the_perturbation_the_modality_and_what_applies():
    with pytest.raises(PerturbationError) as err:
        get_perturbation("blur", "plot", "text")
    message = str(err.value)
    assert "'blur'" in message and "'plot'" in message and "kind text" in message
    assert "typos" in message and "occlusion" not in message.split("kind text:")[-1]
    with pytest.raises(PerturbationError, match="known kinds"):
        get_perturbation("blur", "x", "graph")


@pytest.mark.parametrize("level", [-0.1, math.inf, math.nan, "0.5"])
def test_bad_levels_are_rejected(level):
    with pytest.raises(PerturbationError, match="'gaussian_noise'"):
        PERTURBATIONS["gaussian_noise"](torch.ones(2, 3), level, ctx([0, 1]))


def test_a_rate_above_one_is_rejected():
    with pytest.raises(PerturbationError, match="'missing_zeros'.*exceeds 1.0"):
        PERTURBATIONS["missing_zeros"](torch.ones(2, 3), 1.5, ctx([0, 1]))


def test_wrong_inputs_are_named():
    with pytest.raises(PerturbationError, match="floating-point"):
        gaussian_noise(torch.ones(2, 3, dtype=torch.long), 0.5, ctx([0, 1]))
    with pytest.raises(PerturbationError, match="images"):
        blur(torch.ones(2, 3), 1.0, ctx([0, 1]))
    with pytest.raises(PerturbationError, match="list of str"):
        word_dropout(torch.ones(2), 0.5, ctx([0, 1]))
    with pytest.raises(PerturbationError, match="2 sample indices for a batch of 3"):
        gaussian_noise(torch.ones(3, 2), 0.5, ctx([0, 1]))
    with pytest.raises(PerturbationError, match="training mean"):
        missing(torch.ones(2, 3), 1.0, ctx([0, 1]), fill="mean")
    with pytest.raises(PerturbationError, match=r"shape \[2\].*\[3\]"):
        missing(torch.ones(2, 3), 1.0, ctx([0, 1], mean=torch.ones(2)), fill="mean")


# ---- expected values --------------------------------------------------------------------------


def test_missing_samples_are_nested_in_the_rate_and_the_others_untouched():
    value = torch.randn(2000, 3)
    index = list(range(2000))
    dropped = {}
    for rate in (0.3, 0.6, 1.0):
        out = missing(value, rate, ctx(index)).value
        gone = (out == 0).all(1)
        assert torch.equal(out[~gone], value[~gone])  # bit for bit
        dropped[rate] = gone
    assert (dropped[0.3] <= dropped[0.6]).all() and dropped[1.0].all()
    assert abs(dropped[0.3].float().mean().item() - 0.3) < 0.04  # a Bernoulli share: 3 sd = 0.031


def test_missing_mean_fills_the_training_mean_and_only_valid_steps():
    value, mask = sequence_batch()
    mean = torch.tensor([0.5, -1.0, 2.0])
    out = missing(value, 1.0, ctx(mask=mask, mean=mean), fill="mean").value
    assert torch.equal(out[mask], mean.expand(int(mask.sum()), 3))
    assert (out[~mask] == PAD).all()
    image = torch.zeros(2, 2, 3, 3)
    filled = missing(image, 1.0, ctx([0, 1], mean=torch.tensor([1.0, 2.0])[:, None, None]), fill="mean").value
    assert torch.equal(filled[:, 0], torch.ones(2, 3, 3)) and torch.equal(
        filled[:, 1], torch.full((2, 3, 3), 2.0)
    )


def test_missing_mask_drops_the_whole_sequence_from_the_mask():
    value, mask = sequence_batch()
    out = missing_mask(value, 0.5, ctx(mask=mask))
    dropped = ~out.mask.any(1)
    assert 0 < int(dropped.sum()) < 6
    assert torch.equal(out.mask[~dropped], mask[~dropped]) and torch.equal(
        out.value[~dropped], value[~dropped]
    )
    assert (out.value[dropped][mask[dropped]] == 0).all() and (out.value[~mask] == PAD).all()
    # the missing family shares one stream: missing_zeros drops the same samples at the same seed
    zeros = missing(value, 0.5, ctx(mask=mask)).value
    assert torch.equal((zeros[mask.nonzero(as_tuple=True)] == 0).all(1), dropped[mask.nonzero()[:, 0]])


def test_gaussian_noise_has_the_requested_snr_and_one_draw_across_levels():
    x = torch.randn(3, 20000, dtype=torch.float64) * torch.tensor([[1.0], [5.0], [0.2]]) + 1.0
    noise = {r: gaussian_noise(x, r, ctx([0, 1, 2])).value - x for r in (0.1, 0.2, 1.0)}
    torch.testing.assert_close(noise[0.2], 2 * noise[0.1], rtol=1e-9, atol=1e-12)
    measured = noise[1.0].pow(2).mean(1).sqrt() / x.pow(2).mean(1).sqrt()
    torch.testing.assert_close(measured, torch.ones(3, dtype=torch.float64), rtol=0.02, atol=0)
    assert snr_db(0.1) == pytest.approx(20.0) and snr_db(0.0) == math.inf
    assert snr_db(1.0) == 0.0 and math.copysign(1.0, snr_db(1.0)) == 1.0  # "0 dB", not "-0 dB"
    assert ratio_for_snr_db(-10) == pytest.approx(3.16228, rel=1e-5) and ratio_for_snr_db(math.inf) == 0.0
    assert torch.equal(gaussian_noise(torch.zeros(2, 4), 1.0, ctx([0, 1])).value, torch.zeros(2, 4))


def test_blur_is_scipy_gaussian_filter_per_channel():
    image = torch.randn(2, 3, 11, 8, dtype=torch.float64)
    for sigma in (0.7, 2.0, 6.0):  # 6: a kernel wider than the image folds back more than once
        out = blur(image, sigma, ctx([0, 1])).value.numpy()
        expected = gaussian_filter1d(gaussian_filter1d(image.numpy(), sigma, axis=-1), sigma, axis=-2)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(blur_matrix(5, 1.3).sum(1), np.ones(5))


def test_occlusion_zeroes_a_patch_of_the_requested_area_in_every_channel():
    out = occlusion(torch.ones(4, 3, 8, 8), 0.25, ctx([0, 1, 2, 3])).value
    for sample in out:
        zero = sample == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        ys, xs = zero[0].nonzero(as_tuple=True)
        assert len(ys) == 16 and int(ys.max() - ys.min()) == 3 and int(xs.max() - xs.min()) == 3
    assert (occlusion(torch.ones(2, 1, 5, 6), 1.0, ctx([0, 1])).value == 0).all()


def test_contrast_and_brightness_loss_by_hand():
    image = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]], [[1.0, 1.0], [1.0, 5.0]]]])
    half = contrast_loss(image, 0.5, ctx([0])).value
    assert torch.equal(half[0, 0], torch.tensor([[1.5, 2.5], [3.5, 4.5]]))  # around the mean 3
    assert torch.equal(half[0, 1], torch.tensor([[1.5, 1.5], [1.5, 3.5]]))  # around the mean 2
    assert torch.equal(contrast_loss(image, 1.0, ctx([0])).value[0, 0], torch.full((2, 2), 3.0))
    dark = brightness_loss(torch.tensor([[[1.0, 2.0], [3.0, 5.0]]]), 0.5, ctx([0])).value
    assert torch.equal(dark, torch.tensor([[[1.0, 1.5], [2.0, 3.0]]]))  # toward the black point 1
    assert torch.equal(
        brightness_loss(torch.tensor([[[0.0, 0.5, 1.0]]]), 1.0, ctx([0])).value, torch.zeros(1, 1, 3)
    )


def test_timestep_dropout_is_nested_and_drops_from_the_mask_when_asked():
    value, mask = sequence_batch()
    low = timestep_dropout(value, 0.3, ctx(mask=mask)).value
    high = timestep_dropout(value, 0.7, ctx(mask=mask)).value
    low_zero, high_zero = (low == 0).all(-1), (high == 0).all(-1)
    assert (low_zero <= high_zero).all() and int(low_zero.sum()) < int(high_zero.sum())
    assert torch.equal(low[~low_zero], value[~low_zero])
    masked = timestep_dropout(value, 0.7, ctx(mask=mask), drop_mask=True)
    assert torch.equal(masked.value, high) and torch.equal(masked.mask, mask & ~high_zero)
    assert (timestep_dropout(value, 1.0, ctx(mask=mask)).value[mask] == 0).all()


def test_word_perturbations_by_hand():
    assert word_dropout(TEXTS, 1.0, ctx()).value == [""] * 6
    kept = word_dropout(TEXTS, 0.3, ctx()).value
    for before, after in zip(TEXTS, kept, strict=True):
        assert after == before or set(after.split()) < set(before.split())
    assert "a  gated   unit" in kept or kept[1] != TEXTS[1]  # unchanged samples keep their spacing
    shuffled = word_shuffle(TEXTS, 1.0, ctx()).value
    assert [sorted(t.split()) for t in shuffled] == [sorted(t.split()) for t in TEXTS]
    assert shuffled != [" ".join(t.split()) for t in TEXTS]


def test_typo_edits_by_hand():
    assert typo("hello", "swap", 0.0, 0.0) == "ehllo"
    assert typo("hello", "delete", 0.5, 0.0) == "helo"
    assert typo("hello", "repeat", 0.99, 0.0) == "helloo"
    assert typo("Hi", "keyboard", 0.0, 0.0) == "Gi"  # 'h' -> neighbours "gjyubn", case kept
    assert typo("a", "swap", 0.0, 0.0) == "aa" and typo("42", "keyboard", 0.5, 0.5) == "42"
    assert KEYBOARD_NEIGHBOURS["q"] == "wa" and set(KEYBOARD_NEIGHBOURS["s"]) == set("adwezx")


def test_typos_at_a_higher_probability_keep_the_lower_ones():
    low, high = (typos(TEXTS, p, ctx()).value for p in (0.2, 0.6))
    changed_low = changed_high = 0
    for clean, a, b in zip(TEXTS, low, high, strict=True):
        for w, wa, wb in zip(clean.split(), a.split(), b.split(), strict=True):
            if wa != w:
                assert wb == wa
                changed_low += 1
            changed_high += wb != w
    assert 0 < changed_low < changed_high


# ---- batches and the training mean ------------------------------------------------------------


def test_perturb_batch_replaces_one_modality_and_seeds_per_modality():
    image, text = torch.randn(4, 6), torch.randn(4, 6)
    seq, mask = sequence_batch()
    batch = {"image": image, "text": text, "audio": seq[:4], "audio_mask": mask[:4], "index": torch.arange(4)}
    noisy = perturb_batch(batch, "image", "vector", "gaussian_noise", 1.0, seed=0)
    assert (
        noisy["text"] is text and noisy["index"] is batch["index"] and not torch.equal(noisy["image"], image)
    )
    both = perturb_batch(noisy, "text", "vector", "gaussian_noise", 1.0, seed=0)
    assert not torch.allclose(both["text"] - text, both["image"] - image)  # independent draws per modality
    dropped = perturb_batch(batch, "audio", "sequence", "missing_mask", 1.0, seed=0)
    assert not dropped["audio_mask"].any() and batch["audio_mask"].any()
    assert (
        derive_seed(0, "missing", "audio")
        == derive_seed(0, "missing", "audio")
        != derive_seed(1, "missing", "audio")
    )
    with pytest.raises(PerturbationError, match="no modality 'video'"):
        perturb_batch(batch, "video", "vector", "missing_zeros", 0.5, seed=0)
    with pytest.raises(PerturbationError, match="'missing_mean' on modality 'image' needs its training mean"):
        perturb_batch(batch, "image", "vector", "missing_mean", 0.5, seed=0)


def test_mean_accumulator_over_batches():
    x = torch.randn(10, 4)
    acc = MeanAccumulator()
    acc.update(x[:3])
    acc.update(x[3:])
    torch.testing.assert_close(acc.result(), x.mean(0))
    seq, mask = sequence_batch()
    acc = MeanAccumulator()
    acc.update(seq[:2], mask[:2])
    acc.update(seq[2:], mask[2:])
    torch.testing.assert_close(acc.result(), seq[mask].mean(0))
    with pytest.raises(PerturbationError, match="no sample"):
        MeanAccumulator().result()
