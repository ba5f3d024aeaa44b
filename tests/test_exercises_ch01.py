"""Chapter 1 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import assert_accepted, assert_rejected, assert_shortcut, specific_hints
from torch.nn import functional as F

from mixlib import metrics
from mixlib.exercises import ch01

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)


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
        (vr_global_rng, "identically seeded generators gave different answers"),
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


# --- more wrong answers, each with the hint it must get ----------------------------------------------


def vr_reseeds_global(model, x, y, sigma, n_draws, generator):
    torch.manual_seed(0)
    return vicinal_risk(model, x, y, sigma, n_draws, None)


def vr_own_generator(model, x, y, sigma, n_draws, generator):
    return vicinal_risk(model, x, y, sigma, n_draws, torch.Generator().manual_seed(1234))


def vr_uniform_noise(model, x, y, sigma, n_draws, generator):
    noise = torch.rand(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        return float(F.cross_entropy(model((x + sigma * noise).reshape(-1, 2)), y.repeat(n_draws)))


def vr_sum_over_draws(model, x, y, sigma, n_draws, generator):
    return n_draws * vicinal_risk(model, x, y, sigma, n_draws, generator)


def vr_sqrt_sigma(model, x, y, sigma, n_draws, generator):
    return vicinal_risk(model, x, y, sigma**0.5, n_draws, generator)


def vr_nll_on_probs(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        probs = torch.softmax(model((x + sigma * noise).reshape(-1, 2)), dim=1)
        return float(F.nll_loss(probs, y.repeat(n_draws)))


def vr_one_noise_for_all_draws(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(*x.shape, generator=generator)  # the same noisy copy n_draws times
    with torch.no_grad():
        return float(F.cross_entropy(model(x + sigma * noise), y))


def vr_infinite_loop(model, x, y, sigma, n_draws, generator):
    total = 0.0
    i = 0
    while i < n_draws:
        total += vicinal_risk(model, x, y, sigma, 1, generator)
    return total / n_draws


def vr_mutates_x(model, x, y, sigma, n_draws, generator):
    x += sigma * torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def vr_zeroes_model(model, x, y, sigma, n_draws, generator):
    with torch.no_grad():
        model.weight.zero_()
    return vicinal_risk(model, x, y, sigma, n_draws, generator)


def vr_exits(model, x, y, sigma, n_draws, generator):
    raise SystemExit("done")


def vr_stub_dots(model, x, y, sigma, n_draws, generator):
    ...  # your code here


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (vr_reseeds_global, "never drew from `generator`"),
        (vr_own_generator, "never drew from `generator`"),
        (vr_uniform_noise, "uniform on \\[0, sigma\\]"),
        (vr_sum_over_draws, "sum over the draws"),
        (vr_sqrt_sigma, "sqrt\\(sigma\\)"),
        (vr_nll_on_probs, "expects log-probabilities"),
        (vr_one_noise_for_all_draws, "fewer noisy copies than n_draws"),
        (vr_mutates_x, "changed its argument `x` in place"),
        (vr_zeroes_model, "changed the parameters of `model`"),
        (vr_exits, "SystemExit"),
        (vr_stub_dots, "Not attempted yet"),
    ],
)
def test_vicinal_risk_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch01.check_vicinal_risk, answer, hint)


def test_vicinal_risk_checker_stops_an_endless_loop():
    assert_rejected(lambda f, strict=False: ch01.check_vicinal_risk(f, strict, time_limit=1),
                    vr_infinite_loop, "stopped after 1 seconds")


def test_vicinal_risk_checker_accepts_a_loop_over_draws_and_a_numpy_answer():
    def loop_over_draws(model, x, y, sigma, n_draws, generator):
        noise = torch.randn(n_draws, *x.shape, generator=generator)
        with torch.no_grad():
            risks = [F.cross_entropy(model(x + sigma * noise[d]), y) for d in range(n_draws)]
        return torch.stack(risks).mean().numpy()

    assert_accepted(ch01.check_vicinal_risk, loop_over_draws)


def seg_min(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).min(dim=1).values.mean())


def seg_softmax_over_points(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=0).max(dim=1).values.mean())


def seg_max_over_segment(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max())


def seg_log_confidence(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.log().mean())


def seg_class0(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1)[:, 0].mean())


def seg_per_point(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        return torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values


def seg_returns_none(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.mean()


def seg_mutates_a(model, a, b, n_points):
    value = segment_confidence(model, a, b, n_points)
    a.zero_()
    return value


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (seg_min, "SMALLEST class probability"),
        (seg_softmax_over_points, "over the points \\(dim=0\\)"),
        (seg_max_over_segment, "largest probability over the whole segment"),
        (seg_log_confidence, "log of the top probability"),
        (seg_class0, "probability of class 0"),
        (seg_per_point, "single number"),
        (seg_returns_none, "forget the `return` statement"),
        (seg_mutates_a, "changed its argument `a` in place"),
    ],
)
def test_segment_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch01.check_segment_confidence, answer, hint)


# --- exercise 3: confident far from the data ---------------------------------------------------------


def far_confident_share(model, x_train, points, min_distance, threshold):
    far = torch.cdist(points, x_train).min(dim=1).values > min_distance
    with torch.no_grad():
        top = torch.softmax(model(points[far]), dim=1).max(dim=1).values
    return float((top > threshold).float().mean())


def test_far_confident_share_reference_passes_and_the_library_is_a_shortcut():
    assert_accepted(ch01.check_far_confident_share, far_confident_share)
    assert_shortcut(ch01.check_far_confident_share,
                    lambda m, x, p, d, t: metrics.confidence_away_from_data(m, x, p, d, t),
                    "mixlib.metrics.confidence_away_from_data")


def _far(select="min", divide="far", use="softmax", compare="gt"):
    def answer(model, x_train, points, min_distance, threshold):
        dist = torch.cdist(points, x_train)
        far = (dist.min(dim=1).values if select == "min" else dist.mean(dim=1)) > min_distance
        with torch.no_grad():
            out = model(points)
        score = torch.softmax(out, dim=1).max(dim=1).values if use == "softmax" else out.max(dim=1).values
        sure = score > threshold if compare == "gt" else score <= threshold
        if divide == "far":
            return float((sure & far).sum() / far.sum())
        if divide == "all":
            return float((sure & far).float().mean())
        return float((sure & far).sum())
    return answer


FAR_WRONG = [
    (_far(divide="all"), "ALL query points"),
    (_far(select="mean"), "mean distance"),
    (_far(use="logit"), "logit"),
    (_far(divide="count"), "count"),
    (_far(compare="le"), "NOT confident"),
    (lambda m, x, p, d, t: float((torch.cdist(p, x).min(dim=1).values > d).float().mean()), "share of far points"),
    (lambda m, x, p, d, t: float((torch.softmax(m(p), 1).max(1).values > t).float().mean()), "distance"),
    (lambda m, x, p, d, t: 0.5, "you returned 0.5"),
]


@pytest.mark.parametrize(("answer", "message"), FAR_WRONG)
def test_far_confident_share_wrong_answers(answer, message):
    assert_rejected(ch01.check_far_confident_share, answer, message)


# --- noise that is not independent across examples and coordinates ----------------------------------


def vr_noise_shared_by_examples(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, 1, x.shape[1], generator=generator)  # one vector per copy, broadcast
    noisy = (x.unsqueeze(0) + sigma * noise).reshape(-1, x.shape[1])
    with torch.no_grad():
        return F.cross_entropy(model(noisy), y.repeat(n_draws)).item()


def vr_one_number_per_copy(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, 1, 1, generator=generator).expand(n_draws, *x.shape)
    noisy = (x.unsqueeze(0) + sigma * noise).reshape(-1, x.shape[1])
    with torch.no_grad():
        return F.cross_entropy(model(noisy), y.repeat(n_draws)).item()


def vr_one_number_per_example(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, x.shape[0], 1, generator=generator)
    noisy = (x.unsqueeze(0) + sigma * noise).reshape(-1, x.shape[1])
    with torch.no_grad():
        return F.cross_entropy(model(noisy), y.repeat(n_draws)).item()


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (vr_noise_shared_by_examples, "Each example needs its own noise"),
        (vr_one_number_per_copy, "independently for every example and every coordinate"),
        (vr_one_number_per_example, "independently for every example and every coordinate"),
    ],
)
def test_vicinal_risk_rejects_noise_shared_across_examples_or_coordinates(answer, hint):
    feedback = assert_rejected(ch01.check_vicinal_risk, answer, hint)
    assert "never reached the inputs" not in feedback.message


def test_vicinal_risk_still_says_when_the_noise_never_reaches_the_inputs():
    def no_noise(model, x, y, sigma, n_draws, generator):
        torch.randn(n_draws, *x.shape, generator=generator)
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    assert_rejected(ch01.check_vicinal_risk, no_noise, "never reached the inputs")


def test_vicinal_risk_accepts_a_tensor_and_says_a_float_was_asked():
    def with_grad(model, x, y, sigma, n_draws, generator):
        noisy = x.unsqueeze(0) + sigma * torch.randn(n_draws, *x.shape, generator=generator)
        return F.cross_entropy(model(noisy.reshape(-1, x.shape[1])), y.repeat(n_draws))

    feedback = assert_accepted(ch01.check_vicinal_risk, with_grad)
    assert "asks for a float" in feedback.message and "gradient" in feedback.message
    assert "asks for a float" not in ch01.check_vicinal_risk(vicinal_risk).message
