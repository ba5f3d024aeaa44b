r"""Mixup: sample a mixing weight, pair the examples, mix inputs and targets, score the result.

Mixup (Zhang et al., arXiv 1710.09412) trains on convex combinations of two examples,

.. math::

    \tilde x = \lambda x + (1 - \lambda) x', \qquad
    \tilde y = \lambda y + (1 - \lambda) y', \qquad \lambda \sim \mathrm{Beta}(\alpha, \alpha).

How the partner :math:`x'` is chosen differs between libraries, and users trip over it:

- **mixlib** pairs example ``i`` with example ``perm[i]`` for a uniformly random permutation
  ``perm`` of the batch (:func:`random_pairing`), as the official manifold-mixup code does.
  An example can therefore be paired with itself, with probability ``1/n`` for a batch of ``n``.
  Because the permutation is random, the order of the batch does not matter.
- **timm** pairs by flipping the batch (``x.flip(0)``: the first example with the last) and
  **torchvision**'s ``MixUp`` transform by rolling it by one (``x.roll(1, 0)``). Both pairings are
  fixed, so both rely on the data loader having shuffled the batch.
- **timm** also applies label smoothing 0.1 to the targets by default, so its soft targets are
  not exactly the mixed one-hot vectors used here.

mixlib samples one ``lam`` per batch by default (as the official code does); every function
also accepts one value per example.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixlib._checks import (
    check_batch,
    check_generator,
    check_labels,
    check_lam_shape,
    check_logits,
    check_nonempty,
    check_perm,
    check_positive,
    check_positive_int,
    check_probability_rows,
    check_reduction,
    check_same_batch,
    check_size,
    check_target_like,
    check_tensor,
)

__all__ = [
    "sample_lambda",
    "random_pairing",
    "mix",
    "mixup",
    "one_hot",
    "soft_cross_entropy",
    "mixed_cross_entropy",
    "mixed_squared_loss",
    "bce_on_softmax",
    "reduce_batch",
]

# A mixing weight: one number for the batch, or a tensor with one number per example.
Lam = float | torch.Tensor


def sample_lambda(
    alpha: float, size: int | tuple[int, ...] | None = None, generator: torch.Generator | None = None
) -> float | torch.Tensor:
    """Draw mixing weights from Beta(alpha, alpha).

    Args:
        alpha: Both shape parameters of the Beta distribution, > 0. Small ``alpha`` puts the
            mass near 0 and 1 (little mixing), ``alpha = 1`` is uniform on [0, 1], large ``alpha``
            concentrates around 1/2.
        size: ``None`` for a single draw returned as a Python float; otherwise the shape of a
            float32 tensor of independent draws.
        generator: Optional ``torch.Generator``. A 63-bit seed is drawn from it (or from torch's
            global generator when ``None``) and fed to NumPy's Beta sampler, so a seeded
            generator gives repeatable draws.

    Returns:
        A float in [0, 1], or a float32 tensor of shape ``size``.

    Raises:
        ValueError: If ``alpha <= 0``.
    """
    alpha = check_positive("alpha", alpha)
    size = check_size(size)
    check_generator(generator)
    # torch has no seedable Beta sampler that takes a Generator, so we hand a seed to NumPy.
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=size)
    if size is None:
        return float(draws)
    return torch.from_numpy(np.asarray(draws, dtype=np.float32))


def random_pairing(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)``: example ``i`` is paired with ``perm[i]``.

    This is the pairing of the official manifold-mixup code. Each example is paired with itself
    with probability ``1/n``.

    Args:
        n: Batch size, >= 1.
        generator: Optional ``torch.Generator`` for repeatable pairings.

    Returns:
        A LongTensor of shape ``(n,)``.
    """
    n = check_positive_int("n", n)
    return torch.randperm(n, generator=check_generator(generator))


def _per_example(lam: Lam, t: torch.Tensor) -> Lam:
    """``lam`` as it multiplies ``t``: one value per example, broadcast over the trailing dims."""
    if isinstance(lam, torch.Tensor):
        return lam.to(t.device, t.dtype).reshape((-1,) + (1,) * (t.dim() - 1))
    return lam


def _mix(t: torch.Tensor, lam: Lam, perm: torch.Tensor) -> torch.Tensor:
    """``lam * t + (1 - lam) * t[perm]``."""
    lam = _per_example(lam, t)
    return lam * t + (1 - lam) * t[perm.to(t.device)]


def mix(t: torch.Tensor, lam: Lam, perm: torch.Tensor) -> torch.Tensor:
    """Mix a batch with its paired batch: ``lam * t + (1 - lam) * t[perm]``.

    This is the input half of :func:`mixup`, for mixing any batch of tensors (inputs, hidden
    states, targets) on its own.

    Args:
        t: Floating-point tensor of shape ``(B, ...)``.
        lam: Mixing weight in [0, 1]: a number, or a tensor of shape ``(B,)`` with one weight per
            example, broadcast over the trailing dimensions.
        perm: LongTensor of shape ``(B,)``: row ``i`` is mixed with row ``perm[i]``.

    Returns:
        A tensor shaped like ``t``.
    """
    t = check_batch("t", t)
    return _mix(t, check_lam_shape(lam, len(t)), check_perm(perm, len(t)))


def mixup(
    x: torch.Tensor, y: torch.Tensor, lam: Lam, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch of inputs and targets with their partners.

    Returns ``(lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm])``.

    Args:
        x: Floating-point inputs of shape ``(B, ...)``.
        y: Floating-point targets of shape ``(B, ...)``: regression targets or one-hot /
            probability vectors (use :func:`one_hot` for class labels).
        lam: Mixing weight in [0, 1]: a number, or a tensor of shape ``(B,)`` with one weight per
            example, broadcast over the trailing dimensions of ``x`` and of ``y`` separately.
        perm: LongTensor of shape ``(B,)``, usually from :func:`random_pairing`: example ``i`` is
            mixed with example ``perm[i]``. Any index vector with values in ``[0, B)`` is accepted.

    Returns:
        The mixed inputs and the mixed targets, shaped like ``x`` and ``y``.

    Raises:
        TypeError: If ``x`` or ``y`` is not a floating-point tensor, or ``perm`` is not a LongTensor.
        ValueError: On mismatched batch sizes, ``lam`` outside [0, 1], a bad ``perm``, NaN or inf.
    """
    x = check_batch("x", x)
    y = check_batch("y", y, hint="for class labels mix one-hot vectors, y = one_hot(y, num_classes)")
    batch = check_same_batch(x=x, y=y)
    lam, perm = check_lam_shape(lam, batch), check_perm(perm, batch)
    return _mix(x, lam, perm), _mix(y, lam, perm)


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot vectors for integer class labels, as a floating-point tensor ready for mixing.

    Args:
        labels: Integer tensor of shape ``(B,)`` with values in ``[0, num_classes)``.
        num_classes: Number of classes, >= 1.
        dtype: Floating-point dtype of the result.

    Returns:
        A tensor of shape ``(B, num_classes)``.
    """
    num_classes = check_positive_int("num_classes", num_classes)
    labels = check_labels("labels", labels, num_classes)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype such as torch.float32, got {dtype!r}")
    return F.one_hot(labels, num_classes).to(dtype)


def reduce_batch(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    """The mean or the sum of per-example values (``reduction`` 'mean' or 'sum'), or the values ('none')."""
    if reduction == "none":
        return per_example
    return per_example.mean() if reduction == "mean" else per_example.sum()


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-sum_k target[k] * log softmax(logits)[k]`` per row: the cross-entropy against soft targets."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against a probability vector per row: ``-sum_k target[k] * log softmax(logits)[k]``.

    Args:
        logits: Floating-point tensor of shape ``(B, C)``.
        target: Floating-point tensor of shape ``(B, C)``, each row a probability vector (for
            example mixed one-hot labels).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for one loss per example.

    Returns:
        A scalar tensor, or a tensor of shape ``(B,)`` when ``reduction="none"``.
    """
    reduction = check_reduction(reduction)
    logits = check_logits(logits)
    target = check_probability_rows("target", target, logits, sum_to_one=True)
    return reduce_batch(_cross_entropy(logits, target.to(logits.device)), reduction)


def bce_on_softmax(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The official manifold-mixup training loss: binary cross-entropy on softmax probabilities.

    The official code (``supervised/main.py`` of vikasverma1077/manifold_mixup) trains ERM, input
    mixup and manifold mixup with ``nn.BCELoss()(softmax(logits, 1), mixed_one_hot)``. Per class
    ``k`` this is ``-(q_k log p_k + (1 - q_k) log(1 - p_k))`` with ``p = softmax(logits)``, averaged
    over the batch *and* the classes; like cross-entropy it is linear in the target ``q``, but it
    adds the ``(1 - q_k) log(1 - p_k)`` terms and the ``1/C`` factor. The logarithms are clamped at
    -100, as ``nn.BCELoss`` does.

    Args:
        logits: Floating-point tensor of shape ``(B, C)``.
        target: Floating-point tensor of shape ``(B, C)`` with entries in [0, 1] (mixed one-hot rows).
        reduction: ``"mean"`` (over batch and classes, as ``nn.BCELoss``), ``"sum"`` (of the
            per-example values) or ``"none"`` (one value per example: the mean over the classes).

    Returns:
        A scalar tensor, or a tensor of shape ``(B,)`` when ``reduction="none"``.
    """
    reduction = check_reduction(reduction)
    logits = check_logits(logits)
    target = check_probability_rows("target", target, logits, sum_to_one=False)
    probs = torch.softmax(logits, dim=1)
    per_entry = F.binary_cross_entropy(probs, target.to(probs.device, probs.dtype), reduction="none")
    return reduce_batch(per_entry.mean(dim=1), reduction)


def mixed_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, y2: torch.Tensor, lam: Lam, reduction: str = "mean"
) -> torch.Tensor:
    """Mixed cross-entropy ``lam * CE(logits, y) + (1 - lam) * CE(logits, y2)`` for class labels.

    Cross-entropy is linear in the target, so this is :func:`soft_cross_entropy` against the
    mixed one-hot target ``lam * one_hot(y) + (1 - lam) * one_hot(y2)``.

    Args:
        logits: Floating-point tensor of shape ``(B, C)``.
        y: Integer labels of shape ``(B,)``.
        y2: Integer labels of the partners, shape ``(B,)`` (usually ``y[perm]``).
        lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor, or a tensor of shape ``(B,)`` when ``reduction="none"``.

    Raises:
        TypeError: If ``logits`` is not floating point or a label tensor is not integer.
        ValueError: On mismatched batch sizes, ``lam`` outside [0, 1], labels outside
            ``[0, C)``, or NaN or inf in ``logits``.
    """
    reduction = check_reduction(reduction)
    logits = check_logits(logits)
    classes = logits.shape[1]
    y, y2 = check_labels("y", y, classes), check_labels("y2", y2, classes)
    lam = _per_example(check_lam_shape(lam, check_same_batch(logits=logits, y=y, y2=y2)), logits)

    def one_hot_rows(labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.to(logits.device), classes).to(logits.dtype)

    target = lam * one_hot_rows(y) + (1 - lam) * one_hot_rows(y2)
    return reduce_batch(_cross_entropy(logits, target), reduction)


def mixed_squared_loss(
    pred: torch.Tensor, y: torch.Tensor, y2: torch.Tensor, lam: Lam, reduction: str = "mean"
) -> torch.Tensor:
    """The mixup regression loss ``1/2 ||lam * y + (1 - lam) * y2 - pred||^2`` per example.

    This is a loss to *minimise*. The essay that motivates the book writes it with a minus sign,
    ``-1/2 ||...||^2``, and says "minimise"; with the minus sign it is a log-likelihood to
    maximise instead, so the book, and this function, use the plus sign.

    Args:
        pred: Floating-point predictions of shape ``(B, ...)``, for example
            ``model(mixed_x)`` or ``head(mixed_features)``.
        y: Targets of the examples, shaped like ``pred`` (a ``(B,)`` target against a
            ``(B, 1)`` prediction is accepted).
        y2: Targets of the partners, shaped like ``y``.
        lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for one loss per example.

    Returns:
        A scalar tensor, or a tensor of shape ``(B,)`` when ``reduction="none"``; the squared
        norm is summed over all trailing dimensions.
    """
    reduction = check_reduction(reduction)
    pred = check_tensor("pred", pred, min_dim=1)
    check_nonempty("pred", pred)
    y, y2 = check_target_like("y", y, pred), check_target_like("y2", y2, pred)
    lam = check_lam_shape(lam, check_same_batch(pred=pred, y=y, y2=y2))
    lam = _per_example(lam, pred)
    residual = lam * y + (1 - lam) * y2 - pred
    return reduce_batch(0.5 * residual.pow(2).reshape(len(pred), -1).sum(dim=1), reduction)
