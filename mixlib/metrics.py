"""Measurements of a trained classifier: accuracy, confidence away from the data, calibration."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch
from torch import nn

from ._checks import (
    check_fraction,
    check_labels,
    check_logits,
    check_model_input,
    check_module,
    check_nonempty,
    check_positive,
    check_positive_int,
    check_same_batch,
    check_tensor,
    model_error,
)
from .mixing import one_hot, soft_cross_entropy
from .seeding import model_device


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The outputs of ``model`` on ``x`` (moved to the model's device), computed in eval mode."""
    check_module("model", model)
    check_tensor("x", x, min_dim=1)
    check_model_input("x", x, model)
    was_training = model.training
    model.eval()
    try:
        out = model(x.to(model_device(model)))
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as problem:
        raise model_error("x", x, problem) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape (n, classes) for x, got {shape}")
    return out


def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax class probabilities of ``model`` on ``x``, computed in eval mode."""
    return torch.softmax(logits(model, x), dim=1)


def _labels_for(name: str, labels: object, scores: torch.Tensor) -> torch.Tensor:
    """Check class labels against ``(n, C)`` scores: shape ``(n,)``, values in ``[0, C)``, at least one."""
    labels = check_labels(name, labels, scores.shape[1])
    check_same_batch(**{"predictions": scores, name: labels})
    check_nonempty(name, labels, "label")
    return labels.to(scores.device)


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float(score(scores, labels))


def score(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy for class labels, mean squared error for float targets; leading (member) dims kept.

    ``out`` is ``(..., n, C)`` scores or ``(..., n, 1)`` predictions and ``y`` is ``(..., n)``; no
    checks (the training loops call it on data they have checked): :func:`accuracy_of` is the
    checked accuracy of one model's logits.
    """
    if y.is_floating_point():
        return (out.reshape(y.shape) - y).double().pow(2).mean(-1)
    return (out.argmax(-1) == y).double().mean(-1)


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` (shape ``(n, C)``) whose largest entry is at the label.

    Any scores that rank the classes as the logits do (probabilities, say) give the same answer.
    """
    logits = check_logits(logits)
    return _accuracy(logits, _labels_for("labels", labels, logits))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``x`` whose most probable class is the label ``y`` (shape ``(n,)``)."""
    scores = logits(model, x)
    return _accuracy(scores, _labels_for("y", y, scores))


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood (cross-entropy) of integer ``labels`` under ``softmax(logits)``.

    Computed in double precision, as :func:`mixlib.mixing.soft_cross_entropy` against one-hot rows.

    Args:
        logits: ``(n, C)`` model outputs (not probabilities).
        labels: int64 labels, shape ``(n,)``, in ``[0, C)``.
    """
    logits = check_logits(logits).double()
    labels = _labels_for("labels", labels, logits)
    return float(soft_cross_entropy(logits, one_hot(labels, logits.shape[1], torch.float64)))


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (see :func:`reliability`)."""
    return reliability(probs, labels, n_bins).ece


def classification_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, NLL and ECE of ``model`` on ``(x, y)``, computed from one forward pass."""
    scores = logits(model, x)
    y = _labels_for("y", y, scores)
    probs = torch.softmax(scores.double(), dim=1)
    return {
        "accuracy": _accuracy(scores, y),
        "nll": nll(scores, y),
        "ece": reliability(probs, y, n_bins).ece,
    }


def grid(x: torch.Tensor, resolution: int = 100, margin: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``resolution x resolution`` grid covering the 2-D points ``x`` plus ``margin``.

    Returns:
        The grid's coordinates as two ``(resolution, resolution)`` tensors (for contour
        plots) stacked in one ``(2, resolution, resolution)`` tensor, and the same points as
        ``(resolution**2, 2)`` rows (for the model).
    """
    check_tensor("x", x, min_dim=2)
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have 2 columns and at least one row, shape (n, 2), got {tuple(x.shape)}")
    resolution = check_positive_int("resolution", resolution)
    if isinstance(margin, bool) or not isinstance(margin, Real) or not 0 <= margin < math.inf:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    x = x.detach().cpu()  # a grid for plotting lives on the CPU
    lo, hi = (x.min(0).values - margin).tolist(), (x.max(0).values + margin).tolist()
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], resolution),
                            torch.linspace(lo[1], hi[1], resolution), indexing="xy")
    return torch.stack([g0, g1]), torch.stack([g0.ravel(), g1.ravel()], dim=1)


def confidence_away_from_data(
    model: nn.Module, x_train: torch.Tensor, points: torch.Tensor, min_distance: float, threshold: float = 0.99
) -> float:
    """Fraction of ``points`` farther than ``min_distance`` from every training point where the
    model's top probability exceeds ``threshold``.

    A model that knows where its data are should be unsure far from them; a high fraction
    means confident predictions in regions no training example supports.
    """
    check_tensor("x_train", x_train, min_dim=2)
    check_tensor("points", points, min_dim=2)
    for name, t in (("x_train", x_train), ("points", points)):
        if t.dim() != 2 or t.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one point, shape (n, features), got {tuple(t.shape)}")
    if points.shape[1] != x_train.shape[1] or points.dtype != x_train.dtype:
        raise ValueError(
            f"points must have x_train's columns and dtype ({x_train.shape[1]}, {x_train.dtype}), "
            f"got ({points.shape[1]}, {points.dtype})"
        )
    if isinstance(model, nn.Module):
        check_model_input("points", points, model)
    check_positive("min_distance", min_distance)
    check_fraction("threshold", threshold)
    far = torch.cdist(points, x_train.to(points.device)).min(dim=1).values > min_distance
    if not bool(far.any()):
        raise ValueError(f"no point is farther than min_distance={min_distance} from the training data")
    top = probabilities(model, points[far]).max(dim=1).values
    return float((top > threshold).float().mean())


@dataclass(frozen=True)
class Reliability:
    """Binned confidences and accuracies (a reliability diagram) and the ECE they give.

    Attributes:
        bin_edges: ``n_bins + 1`` edges on [0, 1].
        confidence: mean top probability in each bin (NaN for an empty bin).
        accuracy: accuracy in each bin (NaN for an empty bin).
        count: examples per bin.
        ece: expected calibration error, ``sum_b (n_b / n) |accuracy_b - confidence_b|``.
    """

    bin_edges: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor
    ece: float


def reliability(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> Reliability:
    """Bin predictions by their top probability and compare confidence with accuracy.

    Args:
        probs: class probabilities, shape ``(n, C)``, rows summing to one.
        labels: int64 labels, shape ``(n,)``.
        n_bins: equal-width confidence bins on [0, 1].
    """
    check_tensor("probs", probs, min_dim=2)
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (n, classes), got {tuple(probs.shape)}")
    probs = probs.detach().cpu()
    if bool(((probs < 0) | (probs > 1)).any()) or not torch.allclose(
        probs.double().sum(1), torch.ones(len(probs), dtype=torch.float64), atol=1e-3
    ):
        raise ValueError("probs must hold probability rows (entries in [0, 1] summing to one); apply softmax to logits")
    labels = _labels_for("labels", labels, probs)
    n_bins = check_positive_int("n_bins", n_bins)
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin b holds confidences in (edge_b, edge_{b+1}]; a confidence of exactly 0 cannot occur
    index = torch.clamp(torch.bucketize(conf.double(), edges, right=False) - 1, 0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, conf.double())
    sum_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    safe = count.clamp(min=1).double()
    gap = (sum_acc - sum_conf).abs().sum() / len(labels)
    nan = torch.full((n_bins,), float("nan"), dtype=torch.float64)
    return Reliability(
        bin_edges=edges,
        confidence=torch.where(count > 0, sum_conf / safe, nan),
        accuracy=torch.where(count > 0, sum_acc / safe, nan),
        count=count,
        ece=float(gap),
    )


def mean_confidence(logits: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean top-class probability of ``softmax(logits / temperature)``."""
    logits = check_logits(logits)
    temperature = check_positive("temperature", temperature)
    return float(torch.softmax(logits.double() / temperature, dim=1).max(dim=1).values.mean())


def temperature_for_confidence(logits: torch.Tensor, confidence: float, tol: float = 1e-6) -> float:
    """The temperature ``T`` at which ``softmax(logits / T)`` has mean top probability ``confidence``.

    Dividing logits by ``T`` changes no prediction, only how sure they are: it is the control
    for "method A beats method B because A is less confident". The mean top probability falls
    monotonically from its ``T -> 0`` limit (1) towards ``1/C`` as ``T`` grows, so bisection on
    ``log T`` finds ``T``.

    Args:
        logits: ``(n, C)`` outputs of a model.
        confidence: the target mean top probability, strictly between ``1/C`` and 1.
        tol: the bisection stops when the bracket on ``log T`` is narrower than this.
    """
    logits = check_logits(logits)
    if logits.shape[1] < 2 or logits.shape[0] == 0:
        raise ValueError(
            f"logits must have shape (n, classes) with n >= 1 and at least 2 classes, got {tuple(logits.shape)}"
        )
    tol = check_positive("tol", tol)
    low_conf = 1.0 / logits.shape[1]
    confidence = check_fraction("confidence", confidence, low=low_conf, high=1.0)
    lo, hi = -12.0, 12.0  # log T
    if mean_confidence(logits, math.exp(lo)) < confidence or mean_confidence(logits, math.exp(hi)) > confidence:
        raise ValueError(f"no temperature in [e^-12, e^12] gives mean confidence {confidence}")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if mean_confidence(logits, math.exp(mid)) > confidence:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def temperature_for_nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature ``T`` in [10^-1.5, 10^1.5] that minimises the NLL of ``softmax(logits / T)``.

    The calibration control that needs no other model: fitted on held-out rows, it gives a model
    its best confidence, so NLL and ECE compare models at their own best temperature. A grid of
    301 values evenly spaced in ``log T``, in double precision.
    """
    logits = check_logits(logits)
    labels = _labels_for("labels", labels, logits)
    temperatures = torch.logspace(-1.5, 1.5, 301, dtype=torch.float64, device=logits.device).reshape(-1, 1, 1)
    log_p = torch.log_softmax(logits.double() / temperatures, -1)
    losses = -log_p.gather(-1, labels.expand(len(temperatures), -1).unsqueeze(-1)).mean((1, 2))
    return float(temperatures.flatten()[int(losses.argmin())])
