"""Checkers for chapter 1, ERM and vicinal risk."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as nnf

from . import Feedback, as_float, call, check_callable, diagnose, finish, hint, passed


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


def check_vicinal_risk(vicinal_risk: Callable, strict: bool = False) -> Feedback:
    """Check ``vicinal_risk(model, x, y, sigma, n_draws, generator) -> float``.

    The expected answer is a Monte Carlo estimate of the Gaussian vicinal risk: the mean,
    over ``n_draws`` noisy copies of the data set and over its examples, of the
    cross-entropy of ``model(x + sigma * noise)`` against ``y``, with standard normal
    noise drawn from ``generator``.
    """
    problem = check_callable(vicinal_risk, "vicinal_risk")
    if problem is not None:
        return finish(problem, strict)
    model, (x, y) = _linear_model(), _points()
    with torch.no_grad():
        logits = model(x)
        erm = float(nnf.cross_entropy(logits, y))
        summed = float(nnf.cross_entropy(logits, y, reduction="sum"))
        on_probs = float(nnf.nll_loss(torch.log(torch.softmax(torch.softmax(logits, 1), 1)), y))
        nll_no_log = float(nnf.nll_loss(torch.softmax(logits, 1), y))

    # 1) With sigma = 0 the vicinity is the data set itself: the empirical risk.
    value, problem = call(vicinal_risk, model, x, y, 0.0, 3, torch.Generator().manual_seed(0))
    if problem is None:
        value, problem = as_float(value, "the vicinal risk")
    if problem is None:
        problem = diagnose(value, erm, {
            "with sigma = 0 the answer should be the mean cross-entropy over the examples; "
            "you seem to sum instead of averaging.": summed,
            "F.cross_entropy expects raw logits: you applied softmax before it.": on_probs,
            "you passed probabilities to nll_loss without taking their log; use F.cross_entropy "
            "on the logits.": -nll_no_log,
        })
        if problem is not None:
            problem = hint("with sigma = 0 (no noise) " + problem.message[0].lower() + problem.message[1:])
    if problem is not None:
        return finish(problem, strict)

    # 2) Same generator seed, same answer: the noise must come from `generator`.
    sigma, n_draws = 2.0, 4000
    a, problem = call(vicinal_risk, model, x, y, sigma, n_draws, torch.Generator().manual_seed(7))
    if problem is None:
        b, problem = call(vicinal_risk, model, x, y, sigma, n_draws, torch.Generator().manual_seed(7))
    if problem is None:
        a, problem = as_float(a, "the vicinal risk")
    if problem is None:
        b, problem = as_float(b, "the vicinal risk")
    if problem is None and a != b:
        problem = hint("two calls with identically seeded generators gave different answers: draw the "
                       "noise with torch.randn(..., generator=generator).")
    if problem is not None:
        return finish(problem, strict)

    # 3) The estimate must match a precise one to within Monte Carlo error.
    with torch.no_grad():
        reference = _gaussian_vicinal_risk(model, x, y, sigma, 100_000, seed=99)
        variance_scaled = _gaussian_vicinal_risk(model, x, y, sigma**2, 100_000, seed=99)
        # per-draw spread of the data-set risk sets the tolerance for an n_draws estimate
        g = torch.Generator().manual_seed(5)
        noisy = x + sigma * torch.randn(2000, *x.shape, generator=g)
        per_draw = nnf.cross_entropy(model(noisy.reshape(-1, 2)), y.repeat(2000), reduction="none")
        spread = float(per_draw.reshape(2000, -1).mean(1).std())
    tolerance = 5 * spread / math.sqrt(n_draws)
    if abs(a - erm) < 1e-6:
        return finish(hint("with sigma = 2 you returned the plain empirical risk: the noise never reached "
                           "the inputs. Evaluate the model on x + sigma * noise."), strict)
    if abs(a - reference) > tolerance:
        if abs(a - variance_scaled) < tolerance:
            return finish(hint("your noise has standard deviation sigma**2; sigma is the standard "
                               "deviation, so multiply standard normal noise by sigma."), strict)
        return finish(hint(f"with sigma = {sigma} and {n_draws} draws you returned {a:.4f}, but the "
                           f"vicinal risk is {reference:.4f} ± {tolerance:.4f}. Check that you average "
                           "over both the draws and the examples."), strict)
    return finish(passed(f"your estimate {a:.4f} matches the vicinal risk {reference:.4f} "
                         f"(±{tolerance:.4f} Monte Carlo error), and sigma = 0 gives the empirical risk."),
                  strict)


def _segment_reference(model: nn.Module, a: torch.Tensor, b: torch.Tensor, n_points: int) -> dict[str, float]:
    """The right answer and the values some typical mistakes give."""
    with torch.no_grad():
        def top(ts: torch.Tensor, kind: str = "max") -> float:
            pts = (1 - ts)[:, None] * a + ts[:, None] * b
            logits = model(pts)
            probs = torch.softmax(logits, dim=1)
            if kind == "class1":
                return float(probs[:, 1].mean())
            if kind == "logits":
                return float(logits.max(dim=1).values.mean())
            return float(probs.max(dim=1).values.mean())

        ts = torch.linspace(0, 1, n_points)
        return {
            "right": top(ts),
            "class1": top(ts, "class1"),
            "logits": top(ts, "logits"),
            "interior": top(torch.linspace(0, 1, n_points + 2)[1:-1]),
            "open_end": top(torch.arange(n_points) / n_points),
        }


def check_segment_confidence(segment_confidence: Callable, strict: bool = False) -> Feedback:
    """Check ``segment_confidence(model, a, b, n_points) -> float``.

    The expected answer is the mean, over ``n_points`` evenly spaced points from ``a`` to
    ``b`` with both ends included, of the model's top class probability (softmax of the
    logits, largest entry).
    """
    problem = check_callable(segment_confidence, "segment_confidence")
    if problem is not None:
        return finish(problem, strict)
    model = _linear_model()
    cases = [
        (torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.5]), 9),
        (torch.tensor([0.5, 3.0]), torch.tensor([1.0, -3.0]), 5),
    ]
    for a, b, n_points in cases:
        value, problem = call(segment_confidence, model, a, b, n_points)
        if problem is None:
            value, problem = as_float(value, "the mean confidence")
        if problem is None:
            ref = _segment_reference(model, a, b, n_points)
            problem = diagnose(value, ref["right"], {
                "you averaged the probability of class 1; the confidence is the LARGEST class "
                "probability at each point (.max(dim=1)).": ref["class1"],
                "you averaged the largest logit; apply softmax first to get probabilities.": ref["logits"],
                "include both endpoints a and b: torch.linspace(0, 1, n_points) gives the weights.":
                    ref["interior"],
                "the last point must be b itself: use torch.linspace(0, 1, n_points), not "
                "torch.arange(n_points) / n_points.": ref["open_end"],
            })
        if problem is not None:
            return finish(problem, strict)
        if not 1.0 / 2 - 1e-6 <= value <= 1.0 + 1e-6:
            return finish(hint("a mean top probability of two classes lies between 0.5 and 1."), strict)
    return finish(passed("your function averages the top class probability along the segment, "
                         "endpoints included."), strict)
