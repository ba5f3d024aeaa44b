"""Checkers for chapter 2, mixup."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable

import numpy as np
import torch
from scipy import special
from torch import nn
from torch.nn import functional as nnf

from ..flatness import chord_nonlinearity
from ..metrics import reliability
from . import (
    Feedback,
    as_float,
    as_tensor,
    call,
    checker,
    diagnose,
    estimate_hint,
    float_note,
    form_hint,
    hint,
    passed,
    prefixed,
    staged,
)

# ---------------------------------------------------------------------------------------------
# Exercise 1: the mixup batch, with one weight per example
# ---------------------------------------------------------------------------------------------

# Row i is paired with row _PERM[i]. Not an involution, so the inverse permutation differs,
# and different from the flip (timm) and roll (torchvision) pairings.
_PERM = torch.tensor([2, 0, 4, 5, 1, 3])
# One weight per example; lam[i] differs from lam[_PERM[i]] for every i, and from the mean.
_LAM = torch.tensor([0.9, 0.2, 0.55, 0.7, 0.05, 0.35])


def _mixup_case(seed: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, *shape, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    return x, nnf.one_hot(labels, 4).float()


def _weights(lam: float | torch.Tensor, t: torch.Tensor) -> float | torch.Tensor:
    """``lam`` as it multiplies ``t``: a float as it is, one weight per row as (B, 1, ..., 1)."""
    if isinstance(lam, torch.Tensor):
        return lam.to(t.dtype).reshape((-1,) + (1,) * (t.dim() - 1))
    return lam


def _pairings(t: torch.Tensor, lam: float | torch.Tensor, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a batch becomes under the right mixing and under typical wrong ones."""
    n = t.shape[0]
    w = _weights(lam, t)
    inverse = torch.argsort(perm)
    variants = {
        "right": w * t + (1 - w) * t[perm],
        "unmixed": t,
        "partner": t[perm],
        "swapped": (1 - w) * t + w * t[perm],
        "inverse": w * t + (1 - w) * t[inverse],
        "flip": w * t + (1 - w) * t.flip(0),
        "roll": w * t + (1 - w) * t.roll(1, 0),
        "identity": w * t + (1 - w) * t[torch.arange(n)],
        "half": (t + t[perm]) / 2,
        "no_one_minus": w * t + t[perm],
        "lam_only": w * t,
        "one_minus_only": (1 - w) * t[perm],
    }
    if isinstance(lam, torch.Tensor):  # mistakes that only one weight per example allows
        mean, first = float(lam.mean()), float(lam[0])
        variants.update({
            "partner_weight": w * t + (1 - w[perm]) * t[perm],
            "partner_weight_swapped": w[perm] * t + (1 - w[perm]) * t[perm],
            "mean_weight": mean * t + (1 - mean) * t[perm],
            "first_weight": first * t + (1 - first) * t[perm],
        })
    return variants


def _which(out: torch.Tensor, variants: dict[str, torch.Tensor]) -> str | None:
    for name, value in variants.items():
        if out.shape == value.shape and torch.allclose(out, value, rtol=1e-5, atol=1e-6):
            return name
    return None


# (the mistake, the formula that fixes it), with {name} the side, x or y
_SIDE_HINTS = {
    "unmixed": ("you returned {name} unchanged: {name} must be mixed too, with the same lam and perm.", ""),
    "partner": ("you returned the partners {name}[perm] alone; the example itself belongs in the mix too.",
                "The mixed batch is lam * {name} + (1 - lam) * {name}[perm]."),
    "inverse": ("row i's partner is row perm[i], which is {name}[perm]; you used the inverse pairing "
                "(argsort(perm), or assigning out[perm] = ...) for {name}.", ""),
    "flip": ("pair with the perm you are given: {name}.flip(0) is timm's fixed pairing, not perm.", ""),
    "roll": ("pair with the perm you are given: {name}.roll(1, 0) is torchvision's fixed pairing, not perm.", ""),
    "half": ("you mixed {name} half and half, ({name} + {name}[perm]) / 2; the weights are lam and 1 - lam.", ""),
    "no_one_minus": ("the partner's weight is missing: the two weights of the mix must add up to 1.",
                     "The mix is lam * {name} + (1 - lam) * {name}[perm]."),
    "lam_only": ("you returned lam * {name} alone; the partner's share is missing.",
                 "Add (1 - lam) * {name}[perm]."),
    "one_minus_only": ("you returned (1 - lam) * {name}[perm] alone; the example's own share is missing.",
                       "Add lam * {name}."),
    "partner_weight": ("mixed example i has ONE weight, lam[i]: lam[i] on example i and 1 - lam[i] on its partner "
                       "perm[i]. You gave the partner the weight 1 - lam[perm[i]] that belongs to the partner's "
                       "own mix, so the two weights of row i no longer add up to 1.",
                       "With w = lam reshaped to (B, 1, ..., 1), the mix is w * {name} + (1 - w) * {name}[perm]; "
                       "index the rows of {name} with perm, never lam."),
    "partner_weight_swapped": ("you weighted row i with lam[perm[i]], the partner's weight; row i's own weight is "
                               "lam[i]: index the rows of {name} with perm, never lam.", ""),
    "mean_weight": ("lam holds one weight per example, but you mixed all the rows of {name} with one number, its "
                    "mean: row i must be mixed with its own weight lam[i].", ""),
    "first_weight": ("lam holds one weight per example, but you mixed all the rows of {name} with lam[0]: row i "
                     "must be mixed with its own weight lam[i].", ""),
}

_BROADCAST_HINT = (
    "lam holds one weight per example, shape (B,), and PyTorch lines shapes up from the RIGHT: a tensor of shape "
    "(B,) times one of shape {shape} pairs the weights with the last dimension, not with the examples, and fails "
    "(or, worse, silently mixes the wrong entries when the sizes happen to agree). Give the weights a shape that "
    "lines them up with the first dimension of each tensor, with a 1 for every other dimension; inputs and "
    "targets have different numbers of dimensions, and an input may have more than two (a batch of images).")


@checker("mixup_batch(x, y, lam, perm)",
         nudge="Look at how each example and its partner are weighted, check that the inputs and the targets "
               "are mixed in the same way with the pairing you are given, and make every weight meet its own "
               "example, whatever the shape of the batch.",
         shortcuts=("mixlib.mixing.mixup",
                    ("mixlib.mixing.mix", "the mix of one batch with its partners that this exercise asks for"),
                    ("mixlib.recipe.target_of_mix", "the mix of one batch with its partners that this exercise "
                                                    "asks for"),
                    _pairings))
def check_mixup_batch(mixup_batch: Callable) -> Feedback:
    """Check ``mixup_batch(x, y, lam, perm) -> (x_mixed, y_mixed)``.

    ``x`` has shape ``(B, ...)`` (vectors or images), ``y`` holds one-hot targets ``(B, C)``, and
    ``lam`` is a float or a tensor of ``B`` weights, one per example. The expected answer is
    ``(w * x + (1 - w) * x[perm], v * y + (1 - v) * y[perm])`` with ``w`` and ``v`` the weights
    shaped to broadcast over each example's entries (``lam`` itself when it is a float),
    without modifying ``x`` or ``y``.
    """
    cases = []
    for seed, shape, lam in [(0, (3,), 0.3), (1, (3,), _LAM), (2, (2, 3), _LAM), (3, (2, 3), 0.8)]:
        x, y = _mixup_case(seed, shape)
        cases.append((x, y, lam, _pairings(x.double(), lam, _PERM), _pairings(y.double(), lam, _PERM)))
    for x, y, lam, x_variants, y_variants in cases:
        per_example = isinstance(lam, torch.Tensor)
        what = (f"with one weight per example and x of shape {tuple(x.shape)}: " if per_example
                else f"with lam = {lam} and x of shape {tuple(x.shape)}: ")
        result, problem = call(mixup_batch, x, y, lam, _PERM)
        if problem is not None:
            if per_example and re.search(r"size of tensor|must match the size|shapes? .* (cannot|could not) be "
                                         r"broadcast|operands could not be broadcast", problem.message):
                return prefixed(what, form_hint(problem.message + " " + _BROADCAST_HINT.format(
                    shape=tuple(x.shape))))
            return problem
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return form_hint("return a pair (x_mixed, y_mixed): the mixed inputs and the mixed targets, as in "
                             "`return x_mixed, y_mixed`.")
        x_out, y_out = result
        if (isinstance(x_out, torch.Tensor) and isinstance(y_out, torch.Tensor)
                and x_out.shape == y.shape and y_out.shape == x.shape):
            return form_hint("you returned the pair in the wrong order: the mixed inputs first, then the mixed "
                             "targets, (x_mixed, y_mixed).")
        for out, t, name in ((x_out, x, "x_mixed"), (y_out, y, "y_mixed")):
            shape = getattr(out, "shape", None)
            if per_example and shape is not None and len(shape) > t.dim():
                return prefixed(what, form_hint(
                    f"{name} should have shape {tuple(t.shape)}, but yours has shape {tuple(shape)}: your weights "
                    "have more dimensions than the tensor they multiply, so broadcasting made a bigger tensor. The "
                    "weights need one dimension for the examples and a 1 for each OTHER dimension of that tensor: "
                    "count the dimensions from the tensor itself rather than writing a fixed number of them."))
        x_out, problem = as_tensor(x_out, "x_mixed", tuple(x.shape))
        if problem is None:
            y_out, problem = as_tensor(y_out, "y_mixed", tuple(y.shape))
        if problem is not None:
            return problem
        got_x, got_y = _which(x_out, x_variants), _which(y_out, y_variants)
        if got_x == got_y == "right":
            continue
        if got_x == got_y == "swapped":
            return prefixed(what, hint("lam weighs the example itself and (1 - lam) its partner; you have the two "
                                       "weights the other way round.", "The mix is lam * x + (1 - lam) * x[perm]."))
        if {got_x, got_y} == {"right", "swapped"}:
            side = "x" if got_x == "swapped" else "y"
            return prefixed(what, hint(f"you swapped lam and 1 - lam for {side} only. Inputs and targets must be "
                                       "mixed with the same weights, or the label no longer describes the input."))
        for got, name in ((got_x, "x"), (got_y, "y")):
            if got != "right" and got in _SIDE_HINTS:
                specific, formula = _SIDE_HINTS[got]
                return prefixed(what, hint(specific.format(name=name), formula.format(name=name)))
        if got_x == "right":
            return prefixed(what, hint("x_mixed is right, but y_mixed is not: mix the targets with the same "
                                       "weights and the same perm as the inputs.",
                                       "y_mixed is lam * y + (1 - lam) * y[perm], each row with its own weight."))
        if got_y == "right":
            return prefixed(what, hint("y_mixed is right, but x_mixed is not: mix the inputs with the same "
                                       "weights and the same perm as the targets.",
                                       "x_mixed is lam * x + (1 - lam) * x[perm], each row with its own weight."))
        return prefixed(what, hint("neither output is the mix with these weights and the perm you are given; "
                                   "check it on a batch of two examples by hand.",
                                   "Each output is lam * t + (1 - lam) * t[perm], with row i weighted by its own "
                                   "lam[i] when lam holds one weight per example."))
    return passed("inputs and targets are mixed alike, with one weight per batch or per example, for vectors and "
                  "for images.")


# ---------------------------------------------------------------------------------------------
# Exercise 2: expected calibration error
# ---------------------------------------------------------------------------------------------


def _bin_index(conf: torch.Tensor, edges: torch.Tensor, right_closed: bool, clamp: bool = True) -> torch.Tensor:
    n_bins = len(edges) - 1
    index = torch.bucketize(conf, edges, right=not right_closed) - 1
    return index.clamp(0, n_bins - 1) if clamp else index.clamp(min=0)


def _binned_gaps(conf: torch.Tensor, correct: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    n_bins = int(index.max()) + 1
    count = torch.bincount(index, minlength=n_bins).double()
    sum_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, conf)
    sum_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    return count, sum_acc, sum_conf


def _ece_variants(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> dict[str, float]:
    """The ECE and what some typical mistakes give instead."""
    probs = probs.double()
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    n = len(labels)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)

    def weighted(conf_: torch.Tensor, index: torch.Tensor, how: str = "abs") -> float:
        count, sum_acc, sum_conf = _binned_gaps(conf_, correct, index)
        if how == "abs":
            return float((sum_acc - sum_conf).abs().sum() / n)
        if how == "signed":
            return float((sum_acc - sum_conf).sum() / n)
        if how == "squared":
            full = count > 0
            gap = (sum_acc[full] - sum_conf[full]) / count[full]
            return float((count[full] / n * gap**2).sum())
        if how == "counts":
            return float((sum_acc - sum_conf).abs().sum())
        if how == "bin_sums":  # totals in each bin instead of averages, then weighted by n_j / n
            return float((count / n * (sum_acc - sum_conf).abs()).sum())
        full = count > 0
        gaps = ((sum_acc[full] - sum_conf[full]) / count[full]).abs()
        if how == "unweighted":
            return float(gaps.mean())
        if how == "gap_sum":
            return float(gaps.sum())
        if how == "max":
            return float(gaps.max())
        return float(gaps.sum() / n_bins)  # "unweighted_all": empty bins count as zero

    right = _bin_index(conf, edges, right_closed=True)
    true_conf = probs[torch.arange(n), labels]
    few_edges = torch.linspace(0, 1, n_bins, dtype=torch.float64)
    many_edges = torch.linspace(0, 1, n_bins + 2, dtype=torch.float64)
    data_edges = torch.linspace(float(conf.min()), float(conf.max()), n_bins + 1, dtype=torch.float64)
    return {
        "right": weighted(conf, right),
        # first, so that on edge cases the edge hint wins over others that happen to coincide
        "left_closed": weighted(conf, _bin_index(conf, edges, right_closed=False)),
        "left_closed_open_top": weighted(conf, _bin_index(conf, edges, right_closed=False, clamp=False)),
        "unweighted": weighted(conf, right, "unweighted"),
        "unweighted_all": weighted(conf, right, "unweighted_all"),
        "true_class": weighted(true_conf, _bin_index(true_conf, edges, right_closed=True)),
        "signed": weighted(conf, right, "signed"),
        "global": abs(weighted(conf, right, "signed")),
        "squared": weighted(conf, right, "squared"),
        "counts": weighted(conf, right, "counts"),
        "gap_sum": weighted(conf, right, "gap_sum"),
        "bin_sums": weighted(conf, right, "bin_sums"),
        "max": weighted(conf, right, "max"),
        "many_edges": weighted(conf, _bin_index(conf, many_edges, right_closed=True)),
        "few_edges": weighted(conf, _bin_index(conf, few_edges, right_closed=True)),
        "data_edges": weighted(conf, _bin_index(conf, data_edges, right_closed=True)),
    }


_ECE_HINTS = {
    "unweighted": "you averaged the bins' gaps equally; weigh each bin by its share of the examples, "
                  "n_j / n, so that a bin with 3 examples counts less than one with 300.",
    "unweighted_all": "you divided the sum of the bins' gaps by the number of bins; weigh each bin by "
                      "n_j / n, its share of the examples, instead.",
    "true_class": "the confidence is the probability of the PREDICTED class (the largest entry of the "
                  "row), not the probability given to the true label.",
    "signed": "take the absolute value of each bin's gap |accuracy - confidence| before summing: "
              "otherwise over- and under-confident bins cancel.",
    "global": "you compared the overall accuracy with the overall confidence (or let the signed gaps "
              "cancel): take |accuracy_j - confidence_j| in each bin, then the weighted sum.",
    "squared": "the ECE uses the absolute gap |accuracy_j - confidence_j|, not its square.",
    "counts": "weigh each bin's gap by n_j / n; you multiplied by the count n_j but did not divide by n "
              "(or summed the bins' totals of accuracy and confidence where their averages belong).",
    "gap_sum": "you summed the bins' gaps |accuracy_j - confidence_j| without weights; the ECE is their "
               "weighted AVERAGE, each bin weighted by its share of the examples, n_j / n.",
    "bin_sums": "in each bin, accuracy_j and confidence_j are AVERAGES over the bin's examples; you used "
                "their sums (totals) instead.",
    "max": "you took the largest gap over the bins (that is the maximum calibration error); the ECE is the "
           "weighted average of the gaps, each bin weighted by n_j / n.",
    "many_edges": staged("you have one bin too many: n_bins + 2 edges, as torch.linspace(0, 1, n_bins + 2) gives, "
                         "make n_bins + 1 bins.",
                         "The n_bins bins have the n_bins + 1 edges torch.linspace(0, 1, n_bins + 1)."),
    "few_edges": staged("you have one bin too few: n_bins edges, as torch.linspace(0, 1, n_bins) gives, make "
                        "n_bins - 1 bins.", "The edges are torch.linspace(0, 1, n_bins + 1)."),
    "data_edges": "the bins split [0, 1], not the range from the smallest to the largest confidence "
                  "(torch.histc with min=max=0 does the latter).",
    "left_closed": "bin j = 1, ..., n_bins holds confidences in ((j - 1) / n_bins, j / n_bins], closed on the "
                   "RIGHT: a confidence of exactly 0.75 with 4 bins goes to bin j = 3, (0.5, 0.75].",
    "left_closed_open_top": "bin j = 1, ..., n_bins holds confidences in ((j - 1) / n_bins, j / n_bins], closed "
                            "on the RIGHT: a confidence of exactly 1 belongs to the last bin, j = n_bins, and 0.75 "
                            "with 4 bins to bin j = 3, (0.5, 0.75].",
}


def _ece_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    g = torch.Generator().manual_seed(2024)
    logits = 2.5 * torch.randn(400, 5, generator=g)
    probs = torch.softmax(logits, dim=1)
    # labels drawn from a flatter distribution than the model's: an over-confident model
    labels = torch.multinomial(torch.softmax(logits / 2, dim=1), 1, generator=g).squeeze(1)
    # confidences exactly on bin edges (binary fractions, exact in float32)
    edge_probs = torch.tensor([
        [0.75, 0.125, 0.125], [0.75, 0.25, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
        [0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.375, 0.3125, 0.3125], [0.125, 0.25, 0.625],
        [0.875, 0.0625, 0.0625], [0.1875, 0.75, 0.0625],
    ])
    edge_labels = torch.tensor([0, 1, 0, 0, 2, 1, 0, 2, 1, 1])
    return [
        ("400 random predictions of 5 classes, 10 bins", probs, labels, 10),
        ("predictions whose confidences sit exactly on bin edges, 4 bins", edge_probs, edge_labels, 4),
    ]


@checker("expected_calibration_error(probs, labels, n_bins)",
         nudge="Look at the three ingredients one at a time: which probability is a prediction's confidence, "
               "which bin each confidence falls into (mind the edges), and how much each bin counts in the "
               "average.",
         shortcuts=("mixlib.metrics.reliability", "mixlib.metrics.ece", _ece_variants))
def check_ece(expected_calibration_error: Callable) -> Feedback:
    """Check ``expected_calibration_error(probs, labels, n_bins) -> float``.

    The expected answer is ``sum_j (n_j / n) |accuracy_j - confidence_j|`` over ``n_bins``
    equal-width bins of the top probability, bin ``j`` holding confidences in
    ``((j - 1) / n_bins, j / n_bins]`` for ``j = 1, ..., n_bins`` as the chapter numbers them (the
    first bin also holds 0), as :func:`mixlib.metrics.reliability` computes it.
    """
    cases = []
    for what, probs, labels, n_bins in _ece_cases():  # references first
        variants = _ece_variants(probs, labels, n_bins)
        assert math.isclose(variants["right"], reliability(probs, labels, n_bins).ece, abs_tol=1e-12)
        cases.append((what, probs, labels, n_bins, variants))
    note = ""
    for what, probs, labels, n_bins, variants in cases:
        value, problem = call(expected_calibration_error, probs, labels, n_bins)
        if problem is None:
            note = note or float_note(value)
            value, problem = as_float(value, "the ECE")
            if problem is not None and value is None and "nan" in problem.message:
                problem = hint(f"on {what}: your ECE came out as NaN. An empty bin has no mean: skip the "
                               "bins that hold no example (their weight n_j / n is 0 anyway).")
        if problem is not None:
            return problem
        wrong = {_ECE_HINTS[k]: v for k, v in variants.items() if k != "right"}
        problem = diagnose(value, variants["right"], wrong, rtol=1e-5, atol=1e-7, fallback=staged(
            "that is not the ECE, and it matches none of the usual mistakes. Check each step: the confidence "
            "is the largest probability of a row, a prediction is correct when its argmax equals the label, "
            "bin j = 1, ..., n_bins holds confidences in ((j - 1) / n_bins, j / n_bins], and each bin's gap "
            "between accuracy and confidence counts in proportion to its number of examples.",
            "The ECE is sum_j (n_j / n) |accuracy_j - confidence_j| over the non-empty bins."))
        if problem is not None:
            return prefixed(f"on {what}: ", problem)
    return passed("your ECE weighs each bin's |accuracy - confidence| by its share of the examples, "
                  "with the right bins, also for confidences on the bin edges." + note)


# ---------------------------------------------------------------------------------------------
# Exercise 3: two moments of the mixing weight, and how often it barely mixes
# ---------------------------------------------------------------------------------------------

#: A mixing weight within this distance of 0 or 1 makes an almost unmixed example.
_NEAR = 0.1


def _cdf(q: float, alpha: float) -> float:
    """P(lam <= q) for lam ~ Beta(alpha, alpha): the regularised incomplete beta function."""
    return float(special.betainc(alpha, alpha, q))


def _moments(alpha: float) -> tuple[float, float, float]:
    var = 1 / (4 * (2 * alpha + 1))
    return 0.5, var, 2 * _cdf(_NEAR, alpha)


def _near_end_mistakes(alpha: float) -> dict[str, float]:
    """What typical wrong answers give for P(lam < 0.1) + P(lam > 0.9), keyed by their hints."""
    low, high = _cdf(_NEAR, alpha), _cdf(1 - _NEAR, alpha)  # high = 1 - low, by symmetry
    log_density = (alpha - 1) * (math.log(_NEAR) + math.log(1 - _NEAR)) - float(special.betaln(alpha, alpha))
    return {
        staged("you counted only the draws near 0; those within 0.1 of 1 are almost unmixed too.",
               "Add P(lam > 0.9), which the symmetry of Beta(alpha, alpha) makes equal to P(lam < 0.1)."): low,
        staged("that is the share of lam between 0.1 and 0.9: the mixes that are NOT near an original.",
               "The share near an end is P(lam < 0.1) + P(lam > 0.9), one minus what you returned."): high - low,
        staged("your share is 1 for every alpha, so every lam was counted: for the end near 1 you took "
               "P(lam <= 0.9), the probability of lying BELOW 0.9 (or P(lam > 0.1)), which together with the end "
               "near 0 covers all of [0, 1].", "The end near 1 is P(lam > 0.9) = 1 - P(lam <= 0.9)."): 1.0,
        "you used a window of 0.05 at each end, as the table in the chapter does; the exercise asks for lam "
        "within 0.1 of 0 or of 1.": 2 * _cdf(0.05, alpha),
        "0.2 is the share for the uniform distribution, alpha = 1, only; it depends on alpha.": 0.2,
        "return the share as a probability between 0 and 1, not as a percentage.": 100 * 2 * low,
        staged("that is twice the DENSITY of lam at 0.1, which is not a probability: the share of draws below 0.1 "
               "is the area under the density up to 0.1.",
               "That area is the cumulative distribution function at 0.1, scipy.stats.beta.cdf(0.1, alpha, "
               "alpha)."): 2 * math.exp(log_density),
    }


@checker("lambda_moments(alpha)",
         nudge="Start from the mean and the variance of a Beta distribution whose two parameters both equal "
               "alpha; for the third number, look at each end of the interval in turn, and at what the symmetry "
               "of the distribution says about the two.",
         shortcuts=(_moments, ("mixlib.gradients.mixing_constant",
                               "E[lam (1 - lam)], one quarter minus the variance that this exercise asks for")))
def check_lambda_moments(lambda_moments: Callable) -> Feedback:
    """Check ``lambda_moments(alpha) -> (mean, variance, share near 0 or 1)`` for lam ~ Beta(alpha, alpha).

    The expected answer is ``(1/2, 1 / (4 (2 alpha + 1)), P(lam < 0.1) + P(lam > 0.9))``, the last
    being ``2 I_0.1(alpha, alpha)`` with ``I`` the regularised incomplete beta function.
    """
    for alpha in [0.5, 2.0, 0.1, 8.0]:
        result, problem = call(lambda_moments, alpha)
        if problem is not None:
            return problem
        if isinstance(result, (torch.Tensor, np.ndarray)) and result.ndim == 1:
            result = list(result)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            return form_hint("return three numbers, in this order: (mean, variance, share of lam within 0.1 of 0 "
                             f"or 1); you returned {type(result).__name__}"
                             + (f" of length {len(result)}." if isinstance(result, (tuple, list)) else "."))
        mean, var, near = _moments(alpha)
        names = ["the mean", "the variance", "the share of lam within 0.1 of 0 or 1"]
        values = []
        for name, v in zip(names, result, strict=True):
            v, problem = as_float(v, f"{name} (alpha = {alpha})")
            if problem is not None:
                return problem
            values.append(v)
        right = (mean, var, near)

        def same(u: float, v: float) -> bool:
            return math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9)

        if not all(map(same, values, right)) and any(
                all(map(same, values, order)) for order in itertools.permutations(right)):
            return form_hint(f"alpha = {alpha}: you returned the right three values in the wrong order; return "
                             "them as (mean, variance, share of lam within 0.1 of 0 or 1).")
        checks = [
            (values[0], mean, {
                staged("your mean depends on alpha, but the symmetry lam <-> 1 - lam of Beta(alpha, alpha) fixes "
                       "it: it is the same for every alpha.",
                       "Beta(a1, a2) has mean a1 / (a1 + a2), which is 1/2 when a1 = a2."): alpha / (alpha + 1),
            }),
            (values[1], var, {
                staged("in the variance of Beta(alpha, alpha) the last factor is 2 alpha + 1, not alpha + 1.",
                       "Beta(a1, a2) has variance a1 a2 / ((a1 + a2)^2 (a1 + a2 + 1))."): 1 / (4 * (alpha + 1)),
                "you lost the factor a1 a2 / (a1 + a2)^2 of the variance of Beta(a1, a2), which is 1/4 when a1 = a2.":
                    1 / (2 * alpha + 1),
                "that is the standard deviation; the variance is its square.":
                    math.sqrt(var),
                "1/12 is the variance of the uniform distribution, Beta(1, 1) only; it depends on alpha.": 1 / 12,
            }),
            (values[2], near, _near_end_mistakes(alpha)),
        ]
        fallbacks = [
            staged("that is not the mean of Beta(alpha, alpha).", "Beta(a1, a2) has mean a1 / (a1 + a2)."),
            staged("that is not the variance of Beta(alpha, alpha).",
                   "Beta(a1, a2) has variance a1 a2 / ((a1 + a2)^2 (a1 + a2 + 1))."),
            staged("that is not the probability that lam lies within 0.1 of 0 or of 1.",
                   "It is P(lam < 0.1) + P(lam > 0.9) = 2 P(lam < 0.1) by the symmetry of Beta(alpha, alpha), "
                   "with P(lam < 0.1) = scipy.stats.beta.cdf(0.1, alpha, alpha)."),
        ]
        for (got, expected, wrong), name, fallback in zip(checks, names, fallbacks, strict=True):
            problem = diagnose(got, expected, wrong, rtol=1e-6, atol=1e-9, fallback=fallback)
            if problem is None:
                continue
            known = any(math.isclose(got, v, rel_tol=1e-6, abs_tol=1e-9) for v in wrong.values())
            # an estimate is named by what the function did (drew random numbers) or returned (a rounded
            # number), never by closeness to the right value, which would let a learner bisect to it
            estimate = None if known else estimate_hint(got, "Give the exact value for this alpha instead.")
            if estimate is not None:
                problem = estimate
            elif not known and name != "the mean" and got < 0:
                problem = hint(f"you returned {got:.6g}, a negative number, but {name} cannot be negative: look "
                               "for a sign error.")
            elif not known and name == names[2] and got > 1:
                problem = hint(f"you returned {got:.6g}, more than 1, but a probability cannot exceed 1.")
            return prefixed(f"{name}, alpha = {alpha}: ", problem)
    return passed("mean 1/2, variance 1 / (4 (2 alpha + 1)) and the share of lam within 0.1 of 0 or 1, "
                  "P(lam < 0.1) + P(lam > 0.9), for every alpha tried.")


# ---------------------------------------------------------------------------------------------
# Exercise 4: how far from linear along a chord
# ---------------------------------------------------------------------------------------------


def _chord_model() -> nn.Module:
    """A fixed three-class linear classifier: its logits are exactly linear along any chord."""
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0], [-1.5, 2.5], [0.5, 0.5]]))
        model.bias.copy_(torch.tensor([0.3, -0.2, 0.0]))
    return model.eval()


@torch.no_grad()
def _chord_variants(model: nn.Module, a: torch.Tensor, b: torch.Tensor, n_points: int) -> dict[str, float]:
    """The gap along the chord, with the weight t on the end ``a``, and what typical mistakes give instead."""
    def gaps(ts: torch.Tensor, f: Callable, swap: bool = False, one_minus: bool = True) -> torch.Tensor:
        t = ts[:, None]
        out = f(model(t * a + (1 - t) * b))
        fa, fb = f(model(a[None]))[0], f(model(b[None]))[0]
        if swap:
            fa, fb = fb, fa
        return out - (t * fa + ((1 - t) if one_minus else 1) * fb)

    def softmax(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, dim=-1)

    ts = torch.linspace(0, 1, n_points)
    g = gaps(ts, softmax)
    t = ts[:, None]
    return {
        "right": float(g.norm(dim=1).mean()),
        "logits": float(gaps(ts, lambda z: z).norm(dim=1).mean()),
        "swapped": float(gaps(ts, softmax, swap=True).norm(dim=1).mean()),
        "interior": float(gaps(torch.linspace(0, 1, n_points + 2)[1:-1], softmax).norm(dim=1).mean()),
        "drop_ends": float(g[1:-1].norm(dim=1).mean()),
        "max": float(g.norm(dim=1).max()),
        "squared": float(g.pow(2).sum(dim=1).mean()),
        "l1": float(g.abs().sum(dim=1).mean()),
        "sum": float(g.norm(dim=1).sum()),
        "dim0": float((torch.softmax(model(t * a + (1 - t) * b), dim=0)
                       - (t * torch.softmax(model(a[None]), dim=0)
                          + (1 - t) * torch.softmax(model(b[None]), dim=0))).norm(dim=1).mean()),
        "no_one_minus": float(gaps(ts, softmax, one_minus=False).norm(dim=1).mean()),
        "log_probs": float(gaps(ts, lambda z: torch.log_softmax(z, dim=-1)).norm(dim=1).mean()),
        "abs_mean": float(g.abs().mean()),
        "norm_dim0": float(g.norm(dim=0).mean()),
        "rms": float(g.pow(2).sum(dim=1).mean().sqrt()),
        "total_norm": float(g.norm()),
    }


_CHORD_HINTS = {
    "logits": "measure the probabilities (softmax of the logits), not the logits: mixup mixes one-hot targets, "
              "so it asks the probabilities to be linear. (This model's logits are exactly linear, so they "
              "score 0.)",
    "swapped": staged("you have the ends the other way round in the straight line: at the point t a + (1 - t) b "
                      "it is weighted the same way, t on the end a and 1 - t on b.",
                      "It is t f(a) + (1 - t) f(b)."),
    "interior": staged("include both endpoints among the n_points values of t.",
                       "Use t = torch.linspace(0, 1, n_points)."),
    "drop_ends": "average over all n_points values of t, ends included (the gap is 0 there).",
    "max": "average the gap over the points of the chord instead of taking its largest value.",
    "squared": "use the Euclidean norm of the gap at each point, not its square.",
    "l1": staged("use the Euclidean norm of the gap, not the sum of its absolute values.",
                 "Take torch.linalg.vector_norm or .norm(dim=1)."),
    "sum": staged("average over the points of the chord, don't sum.", "Use .mean()."),
    "dim0": "take the softmax over the classes (dim=1, the last dimension), not over the points of the chord.",
    "no_one_minus": staged("you left out the factor (1 - t) on f(b) in the straight line.",
                           "The line is t f(a) + (1 - t) f(b)."),
    "log_probs": "measure the probabilities themselves (softmax), not the log-probabilities (log_softmax).",
    "abs_mean": "you averaged the absolute entries of the gap; take the Euclidean norm of the gap vector at each "
                "point (over the classes), then average over the points.",
    "norm_dim0": "you took the norm over the points and averaged over the classes; it is the other way round: "
                 "the norm over the classes (dim=1) at each point, then the mean over the points.",
    "rms": "you took the root of the mean squared norm; average the norms themselves over the points.",
    "total_norm": "you took one norm over the whole (points × classes) gap; take the norm at each point "
                  "(dim=1), then average over the points.",
}


@checker("chord_gap(model, a, b, n_points)",
         nudge="Look at what is compared at each point of the chord: the model's probabilities there against the "
               "straight line between its probabilities at the two ends, measured as a length and averaged over "
               "points that include both ends.",
         shortcuts=("mixlib.flatness.chord_nonlinearity",
                    ("mixlib.flatness.chord_outputs", "the model's outputs along a chord, half of this exercise"),
                    _chord_variants))
def check_chord_gap(chord_gap: Callable) -> Feedback:
    """Check ``chord_gap(model, a, b, n_points) -> float``.

    The expected answer is the mean, over ``n_points`` evenly spaced ``t`` in [0, 1] (ends
    included), of ``|| p(t a + (1 - t) b) - (t p(a) + (1 - t) p(b)) ||``, with ``p`` the
    softmax of the model's logits and the Euclidean norm; the same number as
    :func:`mixlib.flatness.chord_nonlinearity` for the pair ``(a, b)``. (The grid of ``t`` is
    symmetric, so putting the weight ``t`` on ``b`` in both places gives the same number.)
    """
    model = _chord_model()
    cases = []
    for a, b, n_points in [
        (torch.tensor([-1.5, -1.0]), torch.tensor([1.5, -0.5]), 11),
        (torch.tensor([2.0, -2.0]), torch.tensor([-1.0, 1.5]), 6),
    ]:  # references first
        variants = _chord_variants(model, a, b, n_points)
        library = float(chord_nonlinearity(model, a[None], b[None], n_points))
        assert math.isclose(variants["right"], library, rel_tol=1e-5)
        cases.append((a, b, n_points, variants))
    note = ""
    for a, b, n_points, variants in cases:
        value, problem = call(chord_gap, model, a, b, n_points)
        if problem is None:
            note = note or float_note(value)
            value, problem = as_float(value, "the chord gap")
        if problem is not None:
            return problem
        wrong = {_CHORD_HINTS[k]: v for k, v in variants.items() if k != "right"}
        problem = diagnose(value, variants["right"], wrong, rtol=1e-4, atol=1e-6, fallback=staged(
            "that matches none of the usual mistakes. At each of the n_points values of t, ends included, take "
            "the probabilities at that point of the chord, subtract the straight line between the probabilities "
            "at the two ends, take the Euclidean norm over the classes, and average over the points.",
            "In code: t = torch.linspace(0, 1, n_points), p = softmax(model(t a + (1 - t) b)), the gap "
            "p - (t p(a) + (1 - t) p(b)), then .norm(dim=1).mean()."))
        if problem is not None:
            return prefixed(f"on the chord from a = {a.tolist()} to b = {b.tolist()} with n_points = {n_points}: ",
                            problem)
    return passed("your gap matches mixlib.flatness.chord_nonlinearity on two chords." + note)
