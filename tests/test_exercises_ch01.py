"""Chapter 1 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import assert_rejected
from torch.nn import functional as F

from mixlib.exercises import ch01


def vicinal_risk(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        return float(F.cross_entropy(model((x + sigma * noise).reshape(-1, x.shape[1])), y.repeat(n_draws)))


def segment_confidence(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.mean())


def test_reference_solutions_pass():
    assert ch01.check_vicinal_risk(vicinal_risk)
    assert ch01.check_segment_confidence(segment_confidence)
    assert ch01.check_segment_confidence(segment_confidence, strict=True).passed


def vr_summed(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        out = model((x + sigma * noise).reshape(-1, 2))
        return float(F.cross_entropy(out, y.repeat(n_draws), reduction="sum")) / n_draws


def vr_softmax_first(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        out = torch.softmax(model((x + sigma * noise).reshape(-1, 2)), dim=1)
        return float(F.cross_entropy(out, y.repeat(n_draws)))


def vr_no_noise(model, x, y, sigma, n_draws, generator):
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def vr_variance(model, x, y, sigma, n_draws, generator):
    return vicinal_risk(model, x, y, sigma**2, n_draws, generator)


def vr_global_rng(model, x, y, sigma, n_draws, generator):
    return vicinal_risk(model, x, y, sigma, n_draws, None)


def vr_tensor_per_example(model, x, y, sigma, n_draws, generator):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def vr_crashes(model, x, y, sigma, n_draws, generator):
    return model(x.T)


def vr_stub(model, x, y, sigma, n_draws, generator):
    raise NotImplementedError


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (vr_summed, "instead of averaging"),
        (vr_softmax_first, "raw logits"),
        (vr_no_noise, "noise never reached"),
        (vr_variance, "sigma\\*\\*2"),
        (vr_global_rng, "generator=generator"),
        (vr_tensor_per_example, "single number"),
        (vr_crashes, "RuntimeError"),
        (vr_stub, "Not attempted yet"),
        (0.42, "pass your function"),
    ],
)
def test_vicinal_risk_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch01.check_vicinal_risk, answer, hint)


def seg_class1(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1)[:, 1].mean())


def seg_logits(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(model((1 - t) * a + t * b).max(dim=1).values.mean())


def seg_interior(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points + 2)[1:-1, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.mean())


def seg_arange(model, a, b, n_points):
    t = (torch.arange(n_points) / n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.mean())


def seg_endpoints_only(model, a, b, n_points):
    return segment_confidence(model, a, b, 2)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (seg_class1, "LARGEST class probability"),
        (seg_logits, "apply softmax"),
        (seg_interior, "include both endpoints"),
        (seg_arange, "must be b itself"),
        (seg_endpoints_only, "only the two endpoints"),
    ],
)
def test_segment_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch01.check_segment_confidence, answer, hint)
