"""Checkers for chapter 1, ERM and vicinal risk."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as nnf

from . import Feedback, as_float, call, checker, diagnose, float_note, hint, passed, prefixed, staged


def _linear_model() -> nn.Module:
    """A fixed two-class linear classifier on the plane: its answers are known exactly."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.5, -0.5], [-1.0, 2.0]]))
        model.bias.copy_(torch.tensor([0.2, -0.1]))
    return model.eval()


def _points() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(16, 2, generator=g)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).long()
    return x, y


@torch.no_grad()
def _gaussian_vicinal_risk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scale: float,
                           n_draws: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    noisy = x.unsqueeze(0) + scale * torch.randn(n_draws, *x.shape, generator=g)
    logits = model(noisy.reshape(-1, x.shape[1]))
    return float(nnf.cross_entropy(logits, y.repeat(n_draws)))


@functools.lru_cache(maxsize=1)
def _vicinal_references(sigma: float, n_draws: int) -> dict[str, float]:
    """The empirical risk, typical wrong values and a precise vicinal risk with its Monte Carlo tolerance.

    Plain floats, computed once per session from the fixed model and points (they never see the
    learner's code).
    """
    model, (x, y) = _linear_model(), _points()
    with torch.no_grad():
        logits = model(x)
        probs = torch.softmax(logits, 1)
        ref = {
            "erm": float(nnf.cross_entropy(logits, y)),
            "summed": float(nnf.cross_entropy(logits, y, reduction="sum")),
            "on_probs": float(nnf.cross_entropy(probs, y)),
            "nll_no_log": float(nnf.nll_loss(probs, y)),
            "minus_nll_no_log": -float(nnf.nll_loss(probs, y)),
            "log_wrong_class": float(nnf.cross_entropy(logits, 1 - y)),
            "precise": _gaussian_vicinal_risk(model, x, y, sigma, 100_000, seed=99),
            "variance_scaled": _gaussian_vicinal_risk(model, x, y, sigma**2, 40_000, seed=99),
            "sqrt_sigma": _gaussian_vicinal_risk(model, x, y, sigma**0.5, 40_000, seed=99),
            "uniform": _uniform_vicinal_risk(model, x, y, sigma, 40_000, seed=99),
        }
        # the per-draw spread of the data-set risk sets the tolerance for an n_draws estimate
        g = torch.Generator().manual_seed(5)
        noisy = x + sigma * torch.randn(2000, *x.shape, generator=g)
        per_draw = nnf.cross_entropy(model(noisy.reshape(-1, 2)), y.repeat(2000), reduction="none")
        spread = float(per_draw.reshape(2000, -1).mean(1).std())
    ref["tolerance"] = 5 * spread / math.sqrt(n_draws)
    ref["summed_noisy"] = ref["precise"] * len(y)
    ref["summed_draws"] = ref["precise"] * n_draws
    return ref


@torch.no_grad()
def _uniform_vicinal_risk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scale: float, n_draws: int,
                          seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    noisy = x.unsqueeze(0) + scale * torch.rand(n_draws, *x.shape, generator=g)
    return float(nnf.cross_entropy(model(noisy.reshape(-1, x.shape[1])), y.repeat(n_draws)))


def _tilted_model() -> nn.Module:
    """A linear classifier whose logits change when both coordinates move by the same amount.

    (The rows of ``_linear_model``'s weight sum to the same number, so a shift along (1, 1) leaves
    its softmax, and its loss, unchanged.)
    """
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, 0.5], [-1.0, 1.0]]))
        model.bias.copy_(torch.tensor([0.1, -0.2]))
    return model.eval()


#: The correlation test: one point repeated, one draw per call, many seeds.
_REPEATS, _SEEDS, _CORR_SIGMA = 32, 40, 1.0


@functools.lru_cache(maxsize=1)
def _correlation_references() -> tuple[float, float]:
    """The spread (standard deviation over seeds) of a one-draw estimate on ``_REPEATS`` copies of one
    point: with independent noise for every example, and with one noise vector shared by all of them."""
    model = _tilted_model()
    point = torch.tensor([0.3, -0.2])
    g = torch.Generator().manual_seed(17)
    with torch.no_grad():
        noisy = point + _CORR_SIGMA * torch.randn(20_000, _REPEATS, 2, generator=g)
        losses = nnf.cross_entropy(model(noisy.reshape(-1, 2)), torch.zeros(20_000 * _REPEATS, dtype=torch.long),
                                   reduction="none").reshape(20_000, _REPEATS)
    independent = float(losses.mean(1).std())
    shared = float(losses[:, 0].std())
    return independent, shared


@checker("vicinal_risk(model, x, y, sigma, n_draws, generator)",
         nudge="Look at what your estimate averages: the cross-entropy of the model on noisy copies of the whole "
               "data set, every example and coordinate with its own noise of size sigma drawn from `generator`, "
               "averaged over all the copies and all the examples.",
         shortcuts=(_gaussian_vicinal_risk,))
def check_vicinal_risk(vicinal_risk: Callable) -> Feedback:
    """Check ``vicinal_risk(model, x, y, sigma, n_draws, generator) -> float``.

    The expected answer is a Monte Carlo estimate of the Gaussian vicinal risk: the mean,
    over ``n_draws`` noisy copies of the data set and over its examples, of the
    cross-entropy of ``model(x + sigma * noise)`` against ``y``, with standard normal
    noise drawn from ``generator`` (equal seeds give equal answers, different seeds
    different ones).
    """
    model, (x, y) = _linear_model(), _points()
    sigma, n_draws = 2.0, 4000
    ref = dict(_vicinal_references(sigma, n_draws))  # before the learner's code runs

    # 1) With sigma = 0 the vicinity is the data set itself: the empirical risk.
    value, problem = call(vicinal_risk, model, x, y, 0.0, 3, torch.Generator().manual_seed(0))
    if problem is None:
        value, problem = as_float(value, "the vicinal risk")
    if problem is not None:
        return problem
    problem = diagnose(value, ref["erm"], {
        "you seem to sum the cross-entropy over the examples instead of averaging it.": ref["summed"],
        "F.cross_entropy expects raw logits: you applied softmax before it.": ref["on_probs"],
        staged("you took minus the mean probability of the true class, without a log; the cross-entropy is minus "
               "the mean LOG-probability.", "Use F.cross_entropy on the logits."): ref["minus_nll_no_log"],
        staged("you passed probabilities to nll_loss, which expects log-probabilities (that is why your risk is "
               "negative).", "Use F.cross_entropy on the logits."): ref["nll_no_log"],
        "you scored the model against the wrong labels (1 - y); the targets are y.": ref["log_wrong_class"],
        "you seem to sum over the draws (here 3) instead of averaging over them.": 3 * ref["erm"],
    }, fallback="it should be the mean cross-entropy of model(x) against y over the examples (the empirical "
                "risk), because no noise means no vicinity.")
    if problem is not None:
        return prefixed("with sigma = 0 (no noise), ", problem)

    # 2) The noise must come from `generator`: equal seeds, equal answers; different seeds, different ones.
    values, generators, note = [], [], ""
    for seed in (7, 7, 8):
        g = torch.Generator().manual_seed(seed)
        state = g.get_state()
        value, problem = call(vicinal_risk, model, x, y, sigma, n_draws, g)
        if problem is None:
            note = note or float_note(value)
            value, problem = as_float(value, "the vicinal risk")
        if problem is not None:
            return problem
        values.append(value)
        generators.append(torch.equal(state, g.get_state()))
    a, b, c = values
    if abs(a - ref["erm"]) < 1e-6:
        # this model ignores a shift of both coordinates by the same amount; a tilted one does not
        tilted = _tilted_model()
        with torch.no_grad():
            tilted_erm = float(nnf.cross_entropy(tilted(x), y))
        value, problem = call(vicinal_risk, tilted, x, y, sigma, n_draws, torch.Generator().manual_seed(7))
        if problem is None:
            value, problem = as_float(value, "the vicinal risk")
        if problem is not None:
            return problem
        if abs(value - tilted_erm) < 1e-6:
            return hint(f"with sigma = {sigma} you returned the plain empirical risk, on two different models: "
                        "the noise never reached the inputs.", "Evaluate the model on x + sigma * noise.")
        return hint(f"with sigma = {sigma} your value equals the plain empirical risk exactly, on a model whose "
                    "logits do not change when both coordinates of an input move by the same amount, yet on "
                    "another model your noise does change the risk: you seem to add the same noise value to "
                    "every coordinate (one number per copy, or per example). The noise must be drawn "
                    "independently for every example and every coordinate of every copy.",
                    "Draw it with torch.randn(n_draws, *x.shape, generator=generator).")
    if a != b:
        return hint("two calls with identically seeded generators gave different answers: the noise must come "
                    "from `generator`, and from no other source of randomness.",
                    "Draw it with torch.randn(..., generator=generator).")
    if generators[0]:
        return hint("your function never drew from `generator` (its state was the same after the call): the "
                    "noise must come from it, so that the caller controls it.",
                    "Draw it with torch.randn(..., generator=generator).")
    if a == c:
        return hint("two generators seeded differently gave exactly the same answer: your noise does not come "
                    "from `generator` (did you reseed, or make a generator of your own?).",
                    "Use torch.randn(..., generator=generator).")

    # 3) Both estimates (seeds 7 and 8) must match a precise one to within Monte Carlo error.
    tolerance = ref["tolerance"]

    def near(key: str) -> bool:
        scale = max(1.0, ref[key] / ref["precise"])
        return all(abs(v - ref[key]) <= tolerance * scale for v in (a, c))

    if near("precise"):
        problem = _check_independent_noise(vicinal_risk)
        if problem is not None:
            return problem
        return passed(f"your estimate {a:.4f} agrees with a precise one to within the Monte Carlo error of "
                      f"{n_draws} draws, equal seeds give equal answers, and sigma = 0 gives the empirical "
                      "risk." + note)
    mistakes = {
        "variance_scaled": "your noise has standard deviation sigma**2; sigma is the standard deviation, so "
                           "multiply standard normal noise by sigma.",
        "sqrt_sigma": "your noise has standard deviation sqrt(sigma); sigma is the standard deviation itself, "
                      "so multiply standard normal noise by sigma.",
        "uniform": staged("your noise looks uniform on [0, sigma] (torch.rand); the vicinity is Gaussian: "
                          "standard normal noise, times sigma.", "Draw it with torch.randn."),
        "summed_noisy": "you seem to sum over the examples instead of averaging over them.",
        "summed_draws": "you seem to sum over the draws instead of averaging over them.",
    }
    for key, message in mistakes.items():
        if near(key):
            return prefixed(f"with sigma = {sigma}: ", hint(message))
    if abs(a - c) > 1.5 * tolerance:
        return hint(f"with sigma = {sigma} and {n_draws} draws, your estimates for two seeds differ by "
                    f"{abs(a - c):.3g}, far more than the Monte Carlo error of {n_draws} draws allows: are you "
                    "drawing fewer noisy copies than n_draws (one copy reused, or one noise value per copy)?",
                    "Draw noise of shape (n_draws, *x.shape).")
    return hint(f"with sigma = {sigma} and {n_draws} draws you returned {a:.4f}, which is further from the "
                "vicinal risk than Monte Carlo error explains. Check that the noise is sigma times standard "
                "normal noise, added to every example of every copy, and that you average over both the draws "
                "and the examples.")


def _check_independent_noise(vicinal_risk: Callable) -> Feedback | None:
    """A hint if the noise is shared by the examples of a copy, else ``None``.

    Shared noise has the right expected value (each example's noise is still standard normal),
    so only the spread shows it: on one point repeated ``_REPEATS`` times, a one-draw estimate
    varies across seeds about sqrt(_REPEATS) times more when every example gets the same noise.
    """
    independent, shared = _correlation_references()
    model = _tilted_model()
    x = torch.tensor([0.3, -0.2]).repeat(_REPEATS, 1)
    y = torch.zeros(_REPEATS, dtype=torch.long)
    values = []
    for seed in range(_SEEDS):
        value, problem = call(vicinal_risk, model, x, y, _CORR_SIGMA, 1, torch.Generator().manual_seed(100 + seed))
        if problem is None:
            value, problem = as_float(value, "the vicinal risk")
        if problem is not None:
            return problem
        values.append(value)
    spread = float(torch.tensor(values, dtype=torch.float64).std())
    if spread > math.sqrt(independent * shared):
        return hint(f"your estimate has the right average but the wrong spread: on one point repeated "
                    f"{_REPEATS} times, with n_draws = 1, it varies across seeds as much as the loss of a single "
                    "noisy example does, so the examples of a copy seem to share their noise. Each example needs "
                    "its own noise, not one noise vector per copy broadcast over the batch.",
                    "Draw torch.randn(n_draws, *x.shape, generator=generator).")
    return None


def _segment_reference(model: nn.Module, a: torch.Tensor, b: torch.Tensor, n_points: int) -> dict[str, float]:
    """The right answer and the values some typical mistakes give."""
    with torch.no_grad():
        def top(ts: torch.Tensor, kind: str = "max") -> float:
            pts = (1 - ts)[:, None] * a + ts[:, None] * b
            logits = model(pts)
            probs = torch.softmax(logits, dim=1)
            if kind == "class1":
                return float(probs[:, 1].mean())
            if kind == "class0":
                return float(probs[:, 0].mean())
            if kind == "logits":
                return float(logits.max(dim=1).values.mean())
            if kind == "min":
                return float(probs.min(dim=1).values.mean())
            if kind == "dim0":
                return float(torch.softmax(logits, dim=0).max(dim=1).values.mean())
            if kind == "max_all":
                return float(probs.max())
            if kind == "log":
                return float(probs.max(dim=1).values.log().mean())
            return float(probs.max(dim=1).values.mean())

        ts = torch.linspace(0, 1, n_points)
        return {
            "right": top(ts),
            "class1": top(ts, "class1"),
            "class0": top(ts, "class0"),
            "min": top(ts, "min"),
            "dim0": top(ts, "dim0"),
            "max_all": top(ts, "max_all"),
            "log": top(ts, "log"),
            "ends_only": top(torch.tensor([0.0, 1.0])),
            "logits": top(ts, "logits"),
            "interior": top(torch.linspace(0, 1, n_points + 2)[1:-1]),
            "open_end": top(torch.arange(n_points) / n_points),
        }


@checker("segment_confidence(model, a, b, n_points)",
         nudge="Look at which probability you average, and over which points: the probability of the model's "
               "most likely class at each point, on points spread evenly along the whole segment, both ends "
               "included.",
         shortcuts=(_segment_reference, ("mixlib.metrics.mean_confidence",
                                         "the mean top-class probability of a batch of logits, the heart of this "
                                         "exercise")))
def check_segment_confidence(segment_confidence: Callable) -> Feedback:
    """Check ``segment_confidence(model, a, b, n_points) -> float``.

    The expected answer is the mean, over ``n_points`` evenly spaced points from ``a`` to
    ``b`` with both ends included, of the model's top class probability (softmax of the
    logits, largest entry).
    """
    model = _linear_model()
    cases = [
        (torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.5]), 9),
        (torch.tensor([0.5, 3.0]), torch.tensor([1.0, -3.0]), 5),
    ]
    refs = [_segment_reference(model, a, b, n) for a, b, n in cases]  # before the learner's code runs
    for (a, b, n_points), ref in zip(cases, refs, strict=True):
        value, problem = call(segment_confidence, model, a, b, n_points)
        if problem is None:
            value, problem = as_float(value, "the mean confidence")
        if problem is not None:
            return problem
        where = f"from a = {a.tolist()} to b = {b.tolist()} with n_points = {n_points}: "
        problem = diagnose(value, ref["right"], {
            staged("you averaged the probability of class 1; the confidence is the LARGEST class "
                   "probability at each point.", "Take it with .max(dim=1)."): ref["class1"],
            staged("you averaged the probability of class 0; the confidence is the LARGEST class "
                   "probability at each point.", "Take it with .max(dim=1)."): ref["class0"],
            "you averaged the largest logit; apply softmax first to get probabilities.": ref["logits"],
            staged("include both endpoints a and b among the n_points points.",
                   "torch.linspace(0, 1, n_points) gives the weights t."): ref["interior"],
            staged("the last point must be b itself, and torch.arange(n_points) / n_points stops short of it.",
                   "Use torch.linspace(0, 1, n_points)."): ref["open_end"],
            staged("you took the SMALLEST class probability; the confidence is the largest.",
                   "Take it with .max(dim=1)."): ref["min"],
            "you took the softmax over the points (dim=0) instead of over the classes (dim=1).": ref["dim0"],
            "you took the largest probability over the whole segment; average the top probability over the "
            "points instead.": ref["max_all"],
            "you used only the two endpoints a and b; take n_points evenly spaced points.": ref["ends_only"],
            "you averaged the log of the top probability; the confidence is the probability itself.": ref["log"],
        }, fallback=staged("the confidence at a point is the largest entry of the softmax of the model's logits "
                           "there; average it over the n_points points of the segment, both ends included.",
                           "The points are (1 - t) a + t b with t = torch.linspace(0, 1, n_points)."))
        if problem is not None:
            return prefixed(where, problem)
    return passed("your function averages the top class probability along the segment, endpoints included.")


# --- exercise 3: confident far from the data ----------------------------------------------------


def _far_case() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A fixed classifier, a few training points and a grid of query points around them."""
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, -1.0], [-2.0, 2.5]]))
        model[0].bias.copy_(torch.tensor([0.5, -0.2]))
    x_train = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0], [0.3, -0.8]])
    side = torch.linspace(-3, 3, 13)
    points = torch.cartesian_prod(side, side)
    return model.eval(), x_train, points


def _far_reference(model: nn.Module, x_train: torch.Tensor, points: torch.Tensor, min_distance: float,
                   threshold: float) -> dict[str, float]:
    """The right share and the shares typical mistakes give."""
    dist = torch.cdist(points.double(), x_train.double())
    nearest, mean = dist.min(dim=1).values, dist.mean(dim=1)
    with torch.no_grad():
        logits = model(points).double()
    top = torch.softmax(logits, dim=1).max(dim=1).values
    far = nearest > min_distance
    sure = top > threshold

    def share(mask: torch.Tensor, of: torch.Tensor) -> float:
        return float((mask & of).sum() / of.sum()) if bool(of.any()) else math.nan

    return {
        "right": share(sure, far),
        "all_points": float((sure & far).double().mean()),
        "ignore_distance": float(sure.double().mean()),
        "mean_distance": share(sure, mean > min_distance),
        "near": share(sure, ~far),
        "count": float((sure & far).sum()),
        "logit": share(logits.max(dim=1).values > threshold, far),
        "far_share": float(far.double().mean()),
        "unsure": share(~sure, far),
    }


@checker("far_confident_share(model, x_train, points, min_distance, threshold)",
         nudge="Look at which points enter the share and what you count among them: only the query points that "
               "are far from every training point, and among those the ones where the model is confident.",
         shortcuts=(_far_reference, "mixlib.metrics.confidence_away_from_data"))
def check_far_confident_share(far_confident_share: Callable) -> Feedback:
    """Check ``far_confident_share(model, x_train, points, min_distance, threshold) -> float``.

    Among the query points farther than ``min_distance`` from every training point (distance to
    the NEAREST training point), the share whose top class probability exceeds ``threshold``.
    """
    model, x_train, points = _far_case()
    cases = [(1.0, 0.99), (2.0, 0.9)]
    refs = [_far_reference(model, x_train, points, d, t) for d, t in cases]  # before the learner runs
    for (min_distance, threshold), ref in zip(cases, refs, strict=True):
        value, problem = call(far_confident_share, model, x_train, points, min_distance, threshold)
        if problem is None:
            value, problem = as_float(value, "the share")
        if problem is not None:
            return problem
        where = f"with min_distance = {min_distance} and threshold = {threshold}: "
        mistakes = {
            "you divided by the number of ALL query points; the share is among the FAR points only.":
                ref["all_points"],
            "you did not use the distance to the training data: count only the points farther than "
            "min_distance from every training point.": ref["ignore_distance"],
            staged("you used the mean distance to the training points; a point is far when even its NEAREST "
                   "training point is farther than min_distance.",
                   "Take torch.cdist(...).min(dim=1)."): ref["mean_distance"],
            "you measured the points NEAR the data; the exercise asks about those farther than min_distance.":
                ref["near"],
            "you returned a count; return the share (a number between 0 and 1).": ref["count"],
            "you compared the largest logit with the threshold; compare the largest softmax PROBABILITY.":
                ref["logit"],
            "you returned the share of far points; among them, count those whose top probability exceeds "
            "the threshold.": ref["far_share"],
            "you counted the far points that are NOT confident; count those whose top probability exceeds "
            "the threshold.": ref["unsure"],
        }
        problem = diagnose(value, ref["right"], {k: v for k, v in mistakes.items() if not math.isnan(v)},
                           fallback="take the distance from each query point to its nearest training point, keep "
                                    "the points where it exceeds min_distance, and return the share of those whose "
                                    "largest softmax probability exceeds threshold.")
        if problem is not None:
            return prefixed(where, problem)
    return passed("your share counts confident answers where no training point is near, as "
                  "metrics.confidence_away_from_data does.")
