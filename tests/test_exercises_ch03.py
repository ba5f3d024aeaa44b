"""Chapter 3 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from exercise_helpers import assert_rejected, assert_shortcut, specific_hints

from mixlib.exercises import ExerciseFailed, ch03

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

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


def test_mix_hidden_reference_passes_and_the_library_is_a_shortcut():
    assert ch03.check_mix_hidden(mix_hidden)
    assert ch03.check_mix_hidden(mix_hidden, strict=True).passed
    assert_shortcut(ch03.check_mix_hidden, mh_library, "mixlib.manifold.StagedNet.forward_mixed")


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
    svals = _per_class(h, labels, lambda H: torch.linalg.svdvals(H - H.mean(0)))
    n = len(svals)
    return sum(float(s[0]) for s in svals) / n, sum(float(s[1:].sum()) for s in svals) / n


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
    assert ch03.check_flattening_summary(flattening_summary, strict=True)
    for center in (False, True):  # the library, called rightly or wrongly
        assert_shortcut(ch03.check_flattening_summary, lambda h, y, c=center: flattening_summary_of(h, y, c),
                        "mixlib.flatness.flattening_summary")


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
    assert ch03.check_sample_layer(lambda e, g: np.int64(e[int(torch.randint(len(e), (), generator=g))]),
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


# --- more wrong answers, each with the hint it must get ----------------------------------------------


def mh_detached_h(model, x, layer, lam, perm):
    h = model.features(x, layer).detach()
    return model.forward_from(lam * h + (1 - lam) * h[perm], layer)


def mh_features_without_grad(model, x, layer, lam, perm):
    with torch.no_grad():
        h = model.features(x, layer)
    return model.forward_from(lam * h + (1 - lam) * h[perm], layer)


def mh_numpy_detour(model, x, layer, lam, perm):
    h = model.features(x, layer).detach().numpy()
    mixed = torch.tensor(lam * h + (1 - lam) * h[perm.numpy()])
    return model.forward_from(mixed, layer)


def mh_half_and_half(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return model.forward_from((h + h[perm]) / 2, layer)


def mh_partners_only(model, x, layer, lam, perm):
    return model(x[perm])


def mh_returns_pair(model, x, layer, lam, perm):
    h = model.features(x, layer)
    mixed = lam * h + (1 - lam) * h[perm]
    return model.forward_from(mixed, layer), mixed


def mh_always_input_mixup(model, x, layer, lam, perm):
    return model.forward_from(lam * x + (1 - lam) * x[perm], 0)


def mh_library_swapped(model, x, layer, lam, perm):
    return model.forward_mixed(x, layer, 1 - lam, perm)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mh_detached_h, "no gradient reaches block\\(s\\) 0, 1"),
        (mh_features_without_grad, "no gradient reaches block\\(s\\) 0, 1"),
        (mh_numpy_detour, "no gradient reaches block"),
        (mh_half_and_half, "half and half"),
        (mh_partners_only, "partners' forward pass"),
        (mh_returns_pair, "you returned tuple"),
        (mh_always_input_mixup, "not the forward pass continued from"),
    ],
)
def test_mix_hidden_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch03.check_mix_hidden, answer, hint)


def test_the_library_called_with_swapped_weights_is_still_a_shortcut():
    assert_shortcut(ch03.check_mix_hidden, mh_library_swapped, "mixlib.manifold.StagedNet.forward_mixed")


def fs_swapped_pair(h, labels):
    return flattening_summary(h, labels)[::-1]


def fs_skips_last_class(h, labels):
    svals = [torch.linalg.svdvals(h[labels == c]) for c in range(int(labels.max()))]
    return float(torch.stack([s[0] for s in svals]).mean()), float(torch.stack([s[1:].sum() for s in svals]).mean())


def fs_per_example(h, labels):
    svals = [torch.linalg.svdvals(h[labels == c]) / int((labels == c).sum()) for c in labels.unique()]
    return float(torch.stack([s[0] for s in svals]).mean()), float(torch.stack([s[1:].sum() for s in svals]).mean())


def fs_centres_in_place(h, labels):
    for c in labels.unique():
        h[labels == c] -= h[labels == c].mean(0)
    return flattening_summary(h, labels)


def fs_normalised(h, labels):
    svals = [torch.linalg.svdvals(h[labels == c]) for c in labels.unique()]
    svals = [s / s.sum() for s in svals]
    return float(torch.stack([s[0] for s in svals]).mean()), float(torch.stack([s[1:].sum() for s in svals]).mean())


def fs_numpy(h, labels):
    hn, yn = h.numpy(), labels.numpy()
    svals = [np.linalg.svd(hn[yn == c], compute_uv=False) for c in np.unique(yn)]
    return np.mean([s[0] for s in svals]), np.mean([s[1:].sum() for s in svals])


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (fs_swapped_pair, "wrong order"),
        (fs_skips_last_class, "left out the last class"),
        (fs_per_example, "divided the singular values of each class by its number"),
        (fs_centres_in_place, "changed its argument `h` in place"),
        (fs_normalised, "matches none of the usual"),
    ],
)
def test_flattening_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch03.check_flattening_summary, answer, hint)


def test_flattening_accepts_numpy_scalars():
    assert ch03.check_flattening_summary(fs_numpy)


def sl_numpy_global(eligible, generator):
    return int(np.random.choice(eligible))


def sl_always_first(eligible, generator):
    return eligible[0]


def sl_returns_tuple(eligible, generator):
    return eligible


def sl_float_layer(eligible, generator):
    return float(sample_layer(eligible, generator))


def sl_weighted_by_index(eligible, generator):
    weights = torch.arange(1, len(eligible) + 1, dtype=torch.float)
    return eligible[int(torch.multinomial(weights, 1, generator=generator))]


def sl_reseeds_global(eligible, generator):
    torch.manual_seed(0)
    return eligible[int(torch.randint(len(eligible), (1,)))]


def sl_own_generator(eligible, generator):
    g = torch.Generator().manual_seed(0)
    return eligible[int(torch.randint(len(eligible), (1,), generator=g))]


def sl_uniform_float(eligible, generator):
    return eligible[int(torch.rand(1, generator=generator) * len(eligible))]


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (sl_numpy_global, "never drew from `generator`"),
        (sl_always_first, "same layer, 0, on all of the first 200 calls"),
        (sl_returns_tuple, "Python int .* not tuple"),
        (sl_float_layer, "Python int"),
        (sl_weighted_by_index, "equally likely"),
        (sl_reseeds_global, "same layer"),
        (sl_own_generator, "same layer"),
    ],
)
def test_sample_layer_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch03.check_sample_layer, answer, hint)


def test_sample_layer_accepts_a_scaled_uniform_draw():
    assert ch03.check_sample_layer(sl_uniform_float)


# --- the layer's type; off-by-one at the head's input ------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        lambda e, g: torch.tensor(e)[torch.randint(len(e), (), generator=g)],  # 0-d tensor
        lambda e, g: torch.tensor(e)[torch.randint(len(e), (1,), generator=g)],  # one-element tensor
        lambda e, g: np.array(e[int(torch.randint(len(e), (), generator=g))]),  # 0-d array
    ],
)
def test_sample_layer_rejects_tensors_and_arrays_with_the_python_int_hint(answer):
    assert_rejected(ch03.check_sample_layer, answer, r"Python int .* not a (tensor|NumPy array)")


def mh_layer_plus_one(model, x, layer, lam, perm):
    k = layer + 1
    h = model.features(x, k)
    return model.forward_from(lam * h + (1 - lam) * h[perm], k)


def mh_mix_outputs(model, x, layer, lam, perm):
    out = model(x)
    return lam * out + (1 - lam) * out[perm]


def test_mix_hidden_tells_mixing_one_layer_too_high_from_mixing_the_logits():
    assert_rejected(ch03.check_mix_hidden, mh_layer_plus_one, r"you mixed at layer 3 instead of layer 2: an off-by-one")
    assert_rejected(ch03.check_mix_hidden, mh_mix_outputs, "you mixed the outputs (logits)")


# --- the chapter's exercise 1: the effective rank of the classes -------------------------------------


def _shares(v):
    p = v / v.sum()
    return p[p > 0]


def effective_rank(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c].double()
        p = _shares(torch.linalg.svdvals(H - H.mean(0)) ** 2)
        values.append(torch.exp(-(p * p.log()).sum()))
    return float(torch.stack(values).mean())


def er_eigvalsh_clamped(h, labels):  # the covariance route, done carefully: accepted
    values = []
    for c in labels.unique():
        v = torch.linalg.eigvalsh(torch.cov(h[labels == c].T.double())).clamp(min=0)
        p = _shares(v)
        values.append(float(torch.exp(-(p * p.log()).sum())))
    return np.mean(values)


def er_uncentred(h, labels):
    values = []
    for c in labels.unique():
        p = _shares(torch.linalg.svdvals(h[labels == c]) ** 2)
        values.append(torch.exp(-(p * p.log()).sum()))
    return float(torch.stack(values).mean())


def er_not_squared(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        p = _shares(torch.linalg.svdvals(H - H.mean(0)))
        values.append(torch.exp(-(p * p.log()).sum()))
    return float(torch.stack(values).mean())


def er_cov_wrong_axis(h, labels):
    values = []
    for c in labels.unique():
        v = torch.linalg.eigvalsh(torch.cov(h[labels == c].double())).clamp(min=0)
        p = _shares(v)
        values.append(float(torch.exp(-(p * p.log()).sum())))
    return sum(values) / len(values)


def er_log_of_zero(h, labels):
    values = []
    for c in labels.unique():
        v = torch.linalg.eigvalsh(torch.cov(h[labels == c].T))
        p = v / v.sum()
        values.append(torch.exp(-(p * p.log()).sum()))
    return float(torch.stack(values).mean())


def er_entropy_only(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        p = _shares(torch.linalg.svdvals(H - H.mean(0)) ** 2)
        values.append(-(p * p.log()).sum())
    return float(torch.stack(values).mean())


def er_weighted_by_size(h, labels):
    total = 0.0
    for c in labels.unique():
        H = h[labels == c]
        p = _shares(torch.linalg.svdvals(H - H.mean(0)) ** 2)
        total += len(H) * float(torch.exp(-(p * p.log()).sum()))
    return total / len(labels)


def er_participation_ratio(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        v = torch.linalg.svdvals(H - H.mean(0)) ** 2
        values.append(v.sum() ** 2 / (v**2).sum())
    return float(torch.stack(values).mean())


def er_library(h, labels):
    from mixlib.flatness import class_dimension

    return class_dimension(h, labels, measure="effective_rank")


def er_library_spectra(h, labels):
    from mixlib.flatness import class_singular_values

    values = []
    for s in class_singular_values(h, labels, center=True).values():
        p = _shares(s**2)
        values.append(float(torch.exp(-(p * p.log()).sum())))
    return sum(values) / len(values)


def test_effective_rank_reference_passes_and_the_library_is_a_shortcut():
    assert ch03.check_effective_rank(effective_rank)
    assert ch03.check_effective_rank(effective_rank, strict=True).passed
    assert ch03.check_effective_rank(er_eigvalsh_clamped, strict=True).passed
    as_tensor = ch03.check_effective_rank(lambda h, labels: torch.tensor(effective_rank(h, labels)), strict=True)
    assert as_tensor.passed and "asks for a float" in as_tensor.message
    assert_shortcut(ch03.check_effective_rank, er_library, "mixlib.flatness.class_dimension")
    assert_shortcut(ch03.check_effective_rank, er_library_spectra, "mixlib.flatness.class_singular_values")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (er_uncentred, "did not subtract each class's mean"),
        (er_not_squared, "SQUARED singular values"),
        (er_cov_wrong_axis, "wrong axis"),
        (er_log_of_zero, "NaN"),
        (er_entropy_only, "its exponential"),
        (er_weighted_by_size, "number of examples"),
        (er_participation_ratio, "participation ratio"),
        (lambda h, labels: [effective_rank(h[labels == c], labels[labels == c]) for c in labels.unique()],
         "one per class"),
    ],
)
def test_effective_rank_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_effective_rank, answer, hint)


def test_the_nan_hint_says_how_to_drop_the_zero_shares():
    with pytest.raises(ExerciseFailed, match=r"p = p\[p > 0\]"):
        ch03.check_effective_rank(er_log_of_zero, strict=True)


# --- the chapter's exercise 2: mixing with a forward hook -------------------------------------------


def mix_with_hook(seq, x, layer, lam, perm):
    if layer == 0:  # the input itself: no stage before the mix
        return seq(lam * x + (1 - lam) * x[perm])

    def mix_output(module, inputs, out):
        return lam * out + (1 - lam) * out[perm]

    handle = seq[layer - 1].register_forward_hook(mix_output)
    try:
        return seq(x)
    finally:
        handle.remove()


def mwh_no_layer_zero(seq, x, layer, lam, perm):  # seq[layer - 1] at layer 0 is seq[-1], the head
    def mix_output(module, inputs, out):
        return lam * out + (1 - lam) * out[perm]

    handle = seq[layer - 1].register_forward_hook(mix_output)
    try:
        return seq(x)
    finally:
        handle.remove()


def mwh_layer_zero_hooks_the_first_block(seq, x, layer, lam, perm):  # mixes the output of seq[0] at layer 0
    handle = seq[max(layer - 1, 0)].register_forward_hook(lambda m, i, out: lam * out + (1 - lam) * out[perm])
    try:
        return seq(x)
    finally:
        handle.remove()


def mwh_layer_zero_unmixed(seq, x, layer, lam, perm):  # skips the mix at layer 0
    if layer == 0:
        return seq(x)
    return mix_with_hook(seq, x, layer, lam, perm)


def mwh_pre_hook(seq, x, layer, lam, perm):  # mixing the input of seq[layer] is the same: accepted
    handle = seq[layer].register_forward_pre_hook(lambda module, inputs: lam * inputs[0] + (1 - lam) * inputs[0][perm])
    out = seq(x)
    handle.remove()
    return out


def mwh_no_return(seq, x, layer, lam, perm):
    def mix_output(module, inputs, out):
        out = lam * out + (1 - lam) * out[perm]  # noqa: F841 (rebinding, the learner's mistake)

    handle = seq[layer - 1].register_forward_hook(mix_output)
    out = seq(x)
    handle.remove()
    return out


def mwh_off_by_one(seq, x, layer, lam, perm):
    handle = seq[layer].register_forward_hook(lambda m, i, out: lam * out + (1 - lam) * out[perm])
    out = seq(x)
    handle.remove()
    return out


def mwh_not_removed(seq, x, layer, lam, perm):
    seq[layer - 1].register_forward_hook(lambda m, i, out: lam * out + (1 - lam) * out[perm])
    return seq(x)


def mwh_swapped(seq, x, layer, lam, perm):
    handle = seq[layer - 1].register_forward_hook(lambda m, i, out: (1 - lam) * out + lam * out[perm])
    out = seq(x)
    handle.remove()
    return out


def mwh_detached(seq, x, layer, lam, perm):
    def mix_output(module, inputs, out):
        out = out.detach()
        return lam * out + (1 - lam) * out[perm]

    handle = seq[layer - 1].register_forward_hook(mix_output)
    out = seq(x)
    handle.remove()
    return out


def mwh_by_hand(seq, x, layer, lam, perm):
    h = seq[:layer](x)
    return seq[layer:](lam * h + (1 - lam) * h[perm])


def mwh_library(seq, x, layer, lam, perm):
    from mixlib.manifold import mix_at

    with mix_at(seq, str(layer - 1), lam, perm):
        return seq(x)


def test_mix_with_hook_reference_passes_and_the_library_is_a_shortcut():
    feedback = ch03.check_mix_with_hook(mix_with_hook)
    assert feedback and "layers 0 to 3" in feedback.message
    assert ch03.check_mix_with_hook(mix_with_hook, strict=True).passed
    assert ch03.check_mix_with_hook(mwh_pre_hook, strict=True).passed
    assert_shortcut(ch03.check_mix_with_hook, mwh_library, "mixlib.manifold.mix_at")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mwh_no_return, "RETURNS replaces"),
        (mwh_off_by_one, r"at layer 2 with lam = 0.3: you mixed at layer 3, the output of seq\[2\].*off-by-one"),
        (mwh_not_removed, "left its hook on the model"),
        (mwh_swapped, "weights are swapped"),
        (mwh_detached, r"no gradient reaches seq\[0\], seq\[1\]"),
        (lambda seq, x, layer, lam, perm: mix_with_hook(seq, x, layer, lam, perm).detach(), "no gradient"),
        (mwh_no_layer_zero, r"at layer 0 with lam = 0.3: at layer 0 your hook sat on seq\[layer - 1\], which is "
                            r"seq\[-1\].*mixed the logits"),
        (mwh_layer_zero_hooks_the_first_block, r"at layer 0 with lam = 0.3: you mixed at layer 1, the output of "
                                               r"seq\[0\], instead of layer 0.*layer 0 is the input x"),
        (mwh_layer_zero_unmixed, r"at layer 0 with lam = 0.3: nothing was mixed"),
    ],
)
def test_mix_with_hook_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_mix_with_hook, answer, hint)


def test_mixing_by_hand_is_right_but_not_what_the_exercise_asks():
    feedback = assert_rejected(ch03.check_mix_with_hook, mwh_by_hand, "never registered a hook")
    assert feedback.stage == 0  # answered in full, not counted as a wrong answer


# --- the chapter's exercise 3: drawing the layer with weights ----------------------------------------


def weighted_layer(eligible, weights, generator):
    i = int(torch.multinomial(torch.tensor(weights), 1, generator=generator))
    return eligible[i]


def wl_inverse_cdf(eligible, weights, generator):  # another right way: accepted
    w = torch.tensor(weights, dtype=torch.float64)
    u = torch.rand((), generator=generator, dtype=torch.float64)
    return eligible[int((torch.cumsum(w, 0) / w.sum() <= u).sum())]


def wl_uniform(eligible, weights, generator):
    return eligible[int(torch.randint(len(eligible), (), generator=generator))]


def wl_off_by_one(eligible, weights, generator):
    i = int(torch.multinomial(torch.tensor(weights), 1, generator=generator))
    return eligible[i - 1]


def wl_global_rng(eligible, weights, generator):
    return eligible[int(torch.multinomial(torch.tensor(weights), 1))]


def wl_unnormalised(eligible, weights, generator):
    u = torch.rand((), generator=generator)
    return eligible[int((torch.cumsum(torch.tensor(weights), 0) <= u).sum())]


def wl_softmax(eligible, weights, generator):
    p = torch.softmax(torch.tensor(weights), 0)
    return eligible[int(torch.multinomial(p, 1, generator=generator))]


def wl_position(eligible, weights, generator):
    return int(torch.multinomial(torch.tensor(weights), 1, generator=generator))


def wl_reseeded(eligible, weights, generator):
    generator.manual_seed(0)
    return weighted_layer(eligible, weights, generator)


def wl_library(eligible, weights, generator):
    from mixlib.manifold import mlp

    return mlp(2, [2] * max(eligible), 2, eligible_layers=eligible).sample_layer(generator)


def test_weighted_layer_reference_passes_and_the_library_is_a_shortcut():
    assert ch03.check_sample_weighted_layer(weighted_layer)
    assert ch03.check_sample_weighted_layer(wl_inverse_cdf, strict=True).passed
    assert_shortcut(ch03.check_sample_weighted_layer, wl_library, "mixlib.manifold.StagedNet.sample_layer")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (wl_uniform, "ignores the weights"),
        (wl_off_by_one, "off by one position"),
        (wl_global_rng, "never drew from `generator`"),
        (wl_unnormalised, "without dividing by their total"),
        (wl_softmax, "softmax"),
        (wl_position, "positions in the tuple"),
        (wl_reseeded, "same layer"),
        (lambda e, w, g: float(weighted_layer(e, w, g)), "Python int"),
    ],
)
def test_weighted_layer_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch03.check_sample_weighted_layer, answer, hint)
