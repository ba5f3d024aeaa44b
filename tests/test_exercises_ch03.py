"""Chapter 3 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import random
import re

import pytest
import torch
from exercise_helpers import assert_rejected

from mixlib.exercises import ch03

# --- mixing at a hidden layer -------------------------------------------------------------


def mix_hidden(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return model.forward_from(lam * h + (1 - lam) * h[perm], layer)


def mh_library(model, x, layer, lam, perm):
    return model.forward_mixed(x, layer, lam, perm)


def mh_no_mixing(model, x, layer, lam, perm):
    return model(x)


def mh_off_by_one(model, x, layer, lam, perm):
    k = max(layer - 1, 0) if layer > 0 else 1
    h = model.features(x, k)
    return model.forward_from(lam * h + (1 - lam) * h[perm], k)


def mh_perm_both(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return model.forward_from(lam * h[perm] + (1 - lam) * h[perm], layer)


def mh_swapped(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return model.forward_from((1 - lam) * h + lam * h[perm], layer)


def mh_mix_logits(model, x, layer, lam, perm):
    out = model(x)
    return lam * out + (1 - lam) * out[perm]


def mh_no_grad(model, x, layer, lam, perm):
    with torch.no_grad():
        return mix_hidden(model, x, layer, lam, perm)


def mh_features(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return lam * h + (1 - lam) * h[perm]


def mh_stub(model, x, layer, lam, perm):
    raise NotImplementedError


def test_mix_hidden_reference_passes():
    assert ch03.check_mix_hidden(mix_hidden)
    assert ch03.check_mix_hidden(mh_library, strict=True).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mh_no_mixing, "nothing was mixed"),
        (mh_off_by_one, "off-by-one"),
        (mh_perm_both, "perm to both sides"),
        (mh_swapped, "weights are swapped"),
        (mh_mix_logits, "mixed the outputs"),
        (mh_no_grad, "no gradient"),
        (mh_features, "shape"),
        (mh_stub, "Not attempted yet"),
        ("mix_hidden", "pass your function"),
    ],
)
def test_mix_hidden_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_mix_hidden, answer, hint)


def test_off_by_one_hint_names_both_layers():
    feedback = ch03.check_mix_hidden(mh_off_by_one)
    expected = r"at layer 2 with lam = 0.3: you mixed at layer 1 instead of layer 2"
    assert re.search(expected, feedback.message), feedback.message


# --- the flattening summary ---------------------------------------------------------------


def _per_class(h, labels, fn):
    return [fn(h[labels == c]) for c in torch.unique(labels)]


def flattening_summary(h, labels):
    svals = _per_class(h, labels, torch.linalg.svdvals)
    top = torch.stack([s[0] for s in svals]).mean()
    rest = torch.stack([s[1:].sum() for s in svals]).mean()
    return float(top), float(rest)


def fs_summed(h, labels):
    svals = _per_class(h, labels, torch.linalg.svdvals)
    return sum(float(s[0]) for s in svals), sum(float(s[1:].sum()) for s in svals)


def fs_rest_includes_top(h, labels):
    svals = _per_class(h, labels, torch.linalg.svdvals)
    n = len(svals)
    return sum(float(s[0]) for s in svals) / n, sum(float(s.sum()) for s in svals) / n


def fs_covariance(h, labels):
    eigs = _per_class(h, labels, lambda H: torch.linalg.eigvalsh(torch.cov(H.T)).flip(0))
    n = len(eigs)
    return sum(float(e[0]) for e in eigs) / n, sum(float(e[1:].sum()) for e in eigs) / n


def fs_gram(h, labels):
    eigs = _per_class(h, labels, lambda H: torch.linalg.eigvalsh(H.T @ H).flip(0))
    n = len(eigs)
    return sum(float(e[0]) for e in eigs) / n, sum(float(e[1:].sum()) for e in eigs) / n


def fs_centred(h, labels):
    return flattening_summary_of(h, labels, center=True)


def flattening_summary_of(h, labels, center):
    from mixlib.flatness import flattening_summary as lib

    return lib(h, labels, center=center)


def fs_pooled(h, labels):
    s = torch.linalg.svdvals(h)
    return float(s[0]), float(s[1:].sum())


def fs_second_only(h, labels):
    svals = _per_class(h, labels, torch.linalg.svdvals)
    n = len(svals)
    return sum(float(s[0]) for s in svals) / n, sum(float(s[1]) for s in svals) / n


def fs_one_number(h, labels):
    return flattening_summary(h, labels)[0]


def test_flattening_reference_passes():
    assert ch03.check_flattening_summary(flattening_summary)
    assert ch03.check_flattening_summary(lambda h, y: flattening_summary_of(h, y, False), strict=True)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (fs_summed, "AVERAGES over classes"),
        (fs_rest_includes_top, "leaves out the largest"),
        (fs_covariance, "covariance"),
        (fs_gram, "SQUARES"),
        (fs_centred, "uncentred"),
        (fs_pooled, "per class"),
        (fs_second_only, "ALL the singular values"),
        (fs_one_number, "pair"),
    ],
)
def test_flattening_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_flattening_summary, answer, hint)


# --- sampling the layer -------------------------------------------------------------------


def sample_layer(eligible, generator):
    i = int(torch.randint(len(eligible), (1,), generator=generator))
    return eligible[i]


def sl_never_zero(eligible, generator):
    i = int(torch.randint(1, len(eligible), (1,), generator=generator)) if len(eligible) > 1 else 0
    return eligible[i]


def sl_never_last(eligible, generator):
    i = int(torch.randint(max(len(eligible) - 1, 1), (1,), generator=generator))
    return eligible[i]


def sl_up_to_max(eligible, generator):
    return int(torch.randint(max(eligible) + 1, (1,), generator=generator))


def sl_position(eligible, generator):
    return int(torch.randint(len(eligible), (1,), generator=generator))


def sl_global_rng(eligible, generator):
    return random.choice(eligible)


def sl_biased(eligible, generator):
    u = float(torch.rand(1, generator=generator))
    return eligible[min(int(u * u * len(eligible)), len(eligible) - 1)]


def sl_tensor_float(eligible, generator):
    return torch.tensor(float(sample_layer(eligible, generator)))


def test_sample_layer_reference_passes():
    assert ch03.check_sample_layer(sample_layer)
    assert ch03.check_sample_layer(lambda e, g: torch.tensor(e)[torch.randint(len(e), (), generator=g)],
                                   strict=True)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (sl_never_zero, "layer 0 (input mixup) never came up"),
        (sl_never_last, "excludes `high`"),
        (sl_up_to_max, "not in the set"),
        (sl_position, "positions in the tuple"),
        (sl_global_rng, "generator"),
        (sl_biased, "equally likely"),
        (sl_tensor_float, "Python int"),
    ],
)
def test_sample_layer_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_sample_layer, answer, hint)
