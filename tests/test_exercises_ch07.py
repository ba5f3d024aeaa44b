"""Chapter 7 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_helpers import assert_rejected, assert_shortcut, specific_hints

from mixlib import routes
from mixlib.exercises import ch07
from mixlib.flatness import class_dimension

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

# --- the curvature of a trajectory ----------------------------------------------------------


def curvature(h_before, h, h_after):
    miss = (h_after - 2 * h + h_before).pow(2).sum(-1)
    steps = (h_after - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1)
    return miss / steps


def cv_mean_over_features(h_before, h, h_after):
    # a mean in both places is the same ratio: accepted
    miss = (h_after - 2 * h + h_before).pow(2).mean(-1)
    return miss / ((h_after - h).pow(2).mean(-1) + (h - h_before).pow(2).mean(-1))


def cv_numpy(h_before, h, h_after):
    a, b, c = (t.numpy() for t in (h_before, h, h_after))
    return ((c - 2 * b + a) ** 2).sum(-1) / (((c - b) ** 2).sum(-1) + ((b - a) ** 2).sum(-1))


def cv_no_denominator(h_before, h, h_after):
    return (h_after - 2 * h + h_before).pow(2).sum(-1)


def cv_wrong_extrapolation(h_before, h, h_after):
    miss = (h_after - 2 * h_before + h).pow(2).sum(-1)
    return miss / ((h_after - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1))


def cv_plain_norms(h_before, h, h_after):
    return (h_after - 2 * h + h_before).norm(dim=-1) / ((h_after - h).norm(dim=-1) + (h - h_before).norm(dim=-1))


def cv_one_step(h_before, h, h_after):
    return (h_after - 2 * h + h_before).pow(2).sum(-1) / (h_after - h).pow(2).sum(-1)


def cv_chord(h_before, h, h_after):
    return (h_after - 2 * h + h_before).pow(2).sum(-1) / (h_after - h_before).pow(2).sum(-1)


def cv_averaged(h_before, h, h_after):
    return curvature(h_before, h, h_after).mean()


def cv_mixed_reduction(h_before, h, h_after):
    miss = (h_after - 2 * h + h_before).pow(2).mean(-1)
    return miss / ((h_after - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1))


def cv_inplace(h_before, h, h_after):
    h_after -= 2 * h - h_before
    return h_after.pow(2).sum(-1) / ((h_after + h_before - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1))


def cv_stub(h_before, h, h_after):
    raise NotImplementedError


def test_curvature_reference_passes():
    assert ch07.check_curvature(curvature)
    assert_shortcut(ch07.check_curvature, routes.curvature_loss, "mixlib.routes.curvature_loss")
    assert ch07.check_curvature(cv_mean_over_features, strict=True).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (cv_no_denominator, "without dividing by the squared steps"),
        (cv_wrong_extrapolation, "the extrapolation is off"),
        (cv_plain_norms, "SQUARED norms"),
        (cv_one_step, "BOTH steps"),
        (cv_chord, "whole chord"),
        (cv_averaged, "one value per row"),
        (cv_mixed_reduction, "same reduction"),
        (cv_inplace, "changed"),
        (cv_stub, "Not attempted"),
        ("curvature", "pass your function"),
    ],
)
def test_curvature_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch07.check_curvature, answer, hint)


# --- the class dimension --------------------------------------------------------------------


def class_dim(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        v = torch.linalg.svdvals(H - H.mean(0)).pow(2)
        values.append(v.sum() ** 2 / v.pow(2).sum())
    return float(torch.stack(values).mean())


def cd_covariance(h, labels):
    values = []
    for c in labels.unique():
        v = torch.linalg.eigvalsh(torch.cov(h[labels == c].T))
        values.append(v.sum() ** 2 / v.pow(2).sum())
    return torch.stack(values).mean()  # a 0-d tensor is a number too


def cd_uncentred(h, labels):
    values = []
    for c in labels.unique():
        v = torch.linalg.svdvals(h[labels == c]).pow(2)
        values.append(v.sum() ** 2 / v.pow(2).sum())
    return float(torch.stack(values).mean())


def cd_singular_values(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        s = torch.linalg.svdvals(H - H.mean(0))
        values.append(s.sum() ** 2 / s.pow(2).sum())
    return float(torch.stack(values).mean())


def cd_pooled(h, labels):
    v = torch.linalg.svdvals(h - h.mean(0)).pow(2)
    return float(v.sum() ** 2 / v.pow(2).sum())


def cd_inverse(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        v = torch.linalg.svdvals(H - H.mean(0)).pow(2)
        values.append(v.pow(2).sum() / v.sum() ** 2)
    return float(torch.stack(values).mean())


def cd_summed(h, labels):
    return class_dim(h, labels) * len(labels.unique())


def cd_weighted(h, labels):
    total = 0.0
    for c in labels.unique():
        H = h[labels == c]
        v = torch.linalg.svdvals(H - H.mean(0)).pow(2)
        total += len(H) * float(v.sum() ** 2 / v.pow(2).sum())
    return total / len(labels)


def cd_effective_rank(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        p = torch.linalg.svdvals(H - H.mean(0)).pow(2)
        p = p[p > 0] / p.sum()
        values.append(torch.exp(-(p * p.log()).sum()))
    return float(torch.stack(values).mean())


def cd_top_share(h, labels):
    values = []
    for c in labels.unique():
        H = h[labels == c]
        v = torch.linalg.svdvals(H - H.mean(0)).pow(2)
        values.append(v[0] / v.sum())
    return float(torch.stack(values).mean())


def cd_per_class_list(h, labels):
    return [class_dim(h[labels == c], labels[labels == c]) for c in labels.unique()]


def test_class_dimension_reference_passes():
    assert ch07.check_class_dimension(class_dim)
    assert_shortcut(ch07.check_class_dimension, class_dimension, "mixlib.flatness.class_dimension")
    assert ch07.check_class_dimension(cd_covariance, strict=True).passed
    assert ch07.check_class_dimension(lambda h, y: np.float64(class_dim(h, y)), strict=True).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (cd_uncentred, "subtract each class's mean"),
        (cd_singular_values, "SQUARED"),
        (cd_pooled, "pooled all classes"),
        (cd_inverse, "upside down"),
        (cd_summed, "summed over the classes"),
        (cd_weighted, "weighted the classes"),
        (cd_effective_rank, "effective rank"),
        (cd_top_share, "largest eigenvalue"),
        (cd_per_class_list, "should be a number"),
    ],
)
def test_class_dimension_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch07.check_class_dimension, answer, hint)


# --- the learned interpolant ----------------------------------------------------------------


def interpolant(encode, decode, x, x2, lam):
    z, z2 = encode(x), encode(x2)
    residual, residual2 = x - decode(z), x2 - decode(z2)
    return decode(lam * z + (1 - lam) * z2) + lam * residual + (1 - lam) * residual2


def ip_float32(encode, decode, x, x2, lam):
    return interpolant(encode, decode, x, x2, lam).float()


def ip_decoded_only(encode, decode, x, x2, lam):
    return decode(lam * encode(x) + (1 - lam) * encode(x2))


def ip_pixels(encode, decode, x, x2, lam):
    return lam * x + (1 - lam) * x2


def ip_swapped(encode, decode, x, x2, lam):
    return interpolant(encode, decode, x, x2, 1 - lam)


def ip_unweighted(encode, decode, x, x2, lam):
    z, z2 = encode(x), encode(x2)
    return decode(lam * z + (1 - lam) * z2) + (x - decode(z)) + (x2 - decode(z2))


def ip_one_residual(encode, decode, x, x2, lam):
    z, z2 = encode(x), encode(x2)
    return decode(lam * z + (1 - lam) * z2) + lam * (x - decode(z))


def ip_sign(encode, decode, x, x2, lam):
    z, z2 = encode(x), encode(x2)
    return decode(lam * z + (1 - lam) * z2) + lam * (decode(z) - x) + (1 - lam) * (decode(z2) - x2)


def ip_mixed_input(encode, decode, x, x2, lam):
    z, z2 = encode(x), encode(x2)
    return decode(encode(lam * x + (1 - lam) * x2)) + lam * (x - decode(z)) + (1 - lam) * (x2 - decode(z2))


def ip_transposed(encode, decode, x, x2, lam):
    return interpolant(encode, decode, x, x2, lam).T


def ip_ends_wrong(encode, decode, x, x2, lam):
    out = interpolant(encode, decode, x, x2, lam)
    return out + 0.1 if lam in (0.0, 1.0) else out


def test_interpolant_reference_passes():
    assert ch07.check_interpolant(interpolant)
    assert ch07.check_interpolant(ip_float32, strict=True).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ip_decoded_only, "decoded mixed code alone"),
        (ip_pixels, "pixel mixing"),
        (ip_swapped, "weights are swapped"),
        (ip_unweighted, "unweighted"),
        (ip_one_residual, "only the residual of x"),
        (ip_sign, "its sign"),
        (ip_mixed_input, "mixed INPUT"),
        (ip_transposed, "shape"),
        (ip_ends_wrong, "exactly x"),
    ],
)
def test_interpolant_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch07.check_interpolant, answer, hint)


def test_interpolant_hints_name_lam():
    feedback = ch07.check_interpolant(ip_swapped)
    assert "with lam = 0.3" in feedback.message, feedback.message


def test_curvature_rejects_a_numpy_array_where_a_tensor_is_asked():
    assert_rejected(ch07.check_curvature, cv_numpy, "you returned a NumPy array")
