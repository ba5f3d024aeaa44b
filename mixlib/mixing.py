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

import math
from numbers import Integral
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mixlib._checks import (
    check_generator,
    check_lam,
    check_not_meta,
    check_positive,
    check_positive_int,
    check_same_batch,
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
    size = _check_size(size)
    check_generator(generator)
    # torch has no seedable Beta sampler that takes a Generator, so we hand a seed to NumPy.
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=size)
    if size is None:
        return float(draws)
    return torch.from_numpy(np.asarray(draws, dtype=np.float32))


def _check_size(size: object) -> int | tuple[int, ...] | None:
    """``None``, an int >= 0 or a tuple of them: the shape of a batch of draws."""
    if size is None:
        return None
    dims = size if isinstance(size, (tuple, list, torch.Size)) else (size,)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, Integral):
            raise TypeError(f"size must be None, an int or a tuple of ints, got {size!r}")
        if d < 0:
            raise ValueError(f"size must hold dimensions >= 0, got {size!r}")
    return tuple(int(d) for d in dims) if isinstance(size, (tuple, list, torch.Size)) else int(size)


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


def _check_perm(perm: object, batch: int) -> torch.Tensor:
    """Check the type and shape of a pairing. Its range is checked by index_select, see _mix."""
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"perm must be a torch.Tensor of indices, got {type(perm).__name__}")
    check_not_meta("perm", perm)
    if perm.dtype != torch.long:
        raise TypeError(f"perm must be a LongTensor (dtype torch.int64), got dtype {perm.dtype}")
    if perm.shape != (batch,):
        raise ValueError(f"perm must have shape ({batch},), one index per example, got {tuple(perm.shape)}")
    if perm.device.type != "cpu":  # an index out of range is a device-side assert on a GPU: check first
        _check_perm_range(perm, batch)
    return perm


def _check_perm_range(perm: torch.Tensor, batch: int) -> None:
    low, high = (int(v) for v in torch.aminmax(perm))
    if low < 0 or high >= batch:
        raise ValueError(f"perm must hold indices in [0, {batch - 1}], got values from {low} to {high}")


def _check_lam_shape(lam: Lam, batch: int) -> Lam:
    """Check ``lam`` and return it as a float, a 0-d tensor or a ``(batch,)`` tensor.

    One value per example may come shaped ``(B,)`` or ``(B, 1)`` (timm returns the latter).
    """
    lam = check_lam(lam)
    if isinstance(lam, torch.Tensor) and lam.dim() > 0:
        if lam.shape not in ((batch,), (batch, 1)):
            raise ValueError(
                f"lam must be a number or a tensor with one value per example, shape ({batch},) or "
                f"({batch}, 1); got shape {tuple(lam.shape)}"
            )
        lam = lam.reshape(batch)
    return lam


def _per_example(lam: Lam, like: torch.Tensor) -> Lam:
    """Shape a per-example ``lam`` of shape (B,) so that it broadcasts over ``like``'s trailing dims."""
    if isinstance(lam, torch.Tensor):
        if lam.dim() == 0:
            return lam.to(like.device, like.dtype)
        return lam.to(like.device, like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))
    return lam


def _check_float_batch(name: str, t: object, hint: str | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    check_not_meta(name, t)
    if not t.is_floating_point():
        hint = hint or f"convert it with {name}.float()"
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}; {hint}")
    if t.dim() == 0:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
    return t


def _check_no_nan_cheaply(name: str, t: torch.Tensor) -> None:
    # A NaN anywhere makes the sum NaN, and one reduction is ~10x cheaper than isnan(t).any()
    # on an image batch. A NaN sum can also come from +inf and -inf together, so the exact
    # check runs only then, to keep the message truthful.
    if math.isnan(float(t.detach().sum())) and torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")


class _MixRows(torch.autograd.Function):
    """``lam * t + (1 - lam) * t[perm]`` for one number ``lam`` and a permutation ``perm``.

    Autograd would differentiate ``t[perm]`` by scattering the gradient back (``index_add_``) and
    then add the two paths, which costs more than the rest of the mixing in a training step. For a
    permutation, the gradient is the same mix of ``grad`` with its rows put back in place,
    ``lam * grad + (1 - lam) * grad[inverse]``: two cheap passes.
    """

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, lam: float, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.lam = lam
        ctx.save_for_backward(inverse)
        return t.index_select(0, perm).lerp_(t, lam)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse).lerp_(grad, ctx.lam), None, None, None


def _mix(t: torch.Tensor, lam: Lam, perm: torch.Tensor) -> torch.Tensor:
    """``lam * t + (1 - lam) * t[perm]``, computed as ``t[perm] + lam * (t - t[perm])`` by lerp.

    ``t[perm]`` is computed by ``index_select``, which is much faster than indexing on large
    batches, and which also checks that the indices in ``perm`` are in range.
    """
    # Pairings and weights are usually drawn on the CPU; the data may live on any device.
    perm = perm.to(t.device, non_blocking=True)
    try:
        if t.requires_grad and torch.is_grad_enabled():
            if isinstance(lam, float):
                sorted_perm, inverse = perm.sort()
                if torch.equal(sorted_perm, torch.arange(len(perm), device=perm.device)):
                    return _MixRows.apply(t, lam, perm, inverse)
            return torch.lerp(t.index_select(0, perm), t, _per_example(lam, t))
        return t.index_select(0, perm).lerp_(t, _per_example(lam, t))
    except IndexError:  # an index out of range: say so in terms of perm
        try:
            _check_perm_range(perm, len(t))
        except ValueError as problem:
            raise problem from None  # the IndexError from inside torch would only add noise
        raise


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
    return _checked_mix("t", t, lam, perm)


def _checked_mix(name: str, t: object, lam: Lam, perm: torch.Tensor, scan_nan: bool = True) -> torch.Tensor:
    t = _check_float_batch(name, t)
    batch = t.shape[0]
    lam = _check_lam_shape(lam, batch)
    perm = _check_perm(perm, batch)
    if scan_nan:
        _check_no_nan_cheaply(name, t)
    return _mix(t, lam, perm)


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
        ValueError: On mismatched batch sizes, ``lam`` outside [0, 1], a bad ``perm``, or NaN.

    Note:
        The NaN check on ``x`` is a single sum (a NaN makes the sum NaN) rather than an
        elementwise test, which would cost more than the mixing itself on an image batch;
        ``y`` and ``lam`` are small and checked elementwise.
    """
    x = _check_float_batch("x", x)
    y = _check_float_batch("y", y, hint="for class labels mix one-hot vectors, y = one_hot(y, num_classes)")
    check_tensor("y", y)
    batch = check_same_batch(x=x, y=y)
    lam = _check_lam_shape(lam, batch)
    perm = _check_perm(perm, batch)
    _check_no_nan_cheaply("x", x)
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
    labels = _check_labels("labels", labels, num_classes)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype such as torch.float32, got {dtype!r}")
    return F.one_hot(labels, num_classes).to(dtype)


def _check_labels(name: str, labels: object, num_classes: int | None = None, scan: bool = True) -> torch.Tensor:
    """Check class labels; with ``scan=False`` only their type and shape, not their range."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    check_not_meta(name, labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        hint = "; soft targets go to soft_cross_entropy" if labels.is_floating_point() else ""
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}{hint}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must have shape (B,), got {tuple(labels.shape)}")
    if scan and labels.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or (num_classes is not None and high >= num_classes):
            upper = "" if num_classes is None else f", {num_classes - 1}"
            raise ValueError(f"{name} must be class indices in [0{upper}], got values from {low} to {high}")
    return labels.long()


# nll_loss skips the labels equal to its ignore_index (-100 by default); none should be skipped.
_NO_CLASS = torch.iinfo(torch.int64).min


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_reduction(reduction: object) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _check_logits(logits: object, scan_nan: bool = True) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.is_meta:
        check_tensor("logits", logits)  # raises a TypeError that says what is wrong
    if scan_nan and torch.isnan(logits).any():
        raise ValueError("logits contains NaN")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, num_classes), got {tuple(logits.shape)}")
    return logits


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
    logits = _check_logits(logits)
    target = check_tensor("target", target)
    if target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if bool((target < 0).any()):
        raise ValueError("target must hold probabilities >= 0 (for example mixed one-hot rows)")
    return _reduce(-(target * F.log_softmax(logits, dim=-1)).sum(dim=-1), reduction)


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
    reduction = _check_reduction(reduction)
    logits = _check_logits(logits)
    target = check_tensor("target", target)
    if target.shape != logits.shape:
        raise ValueError(f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    if target.device != logits.device:
        target = target.to(logits.device)
    if bool(((target < 0) | (target > 1)).any()):
        raise ValueError("target must hold probabilities in [0, 1] (for example mixed one-hot rows)")
    probs = torch.softmax(logits, dim=1)
    per_entry = F.binary_cross_entropy(probs, target.to(probs.dtype), reduction="none")
    return _reduce(per_entry.mean(dim=1), reduction)


def mixed_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, y2: torch.Tensor, lam: Lam, reduction: str = "mean"
) -> torch.Tensor:
    """Mixed cross-entropy ``lam * CE(logits, y) + (1 - lam) * CE(logits, y2)`` for class labels.

    Cross-entropy is linear in the target, so this equals :func:`soft_cross_entropy` against the
    mixed one-hot target ``lam * one_hot(y) + (1 - lam) * one_hot(y2)``, without building it.

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
            ``[0, C)``, or NaN in ``logits``.
    """
    # This runs in every training step, so the checks that scan tensors run only when something
    # is off: nll_loss rejects labels out of range, and a NaN in logits makes the loss NaN.
    reduction = _check_reduction(reduction)
    logits = _check_logits(logits, scan_nan=False)
    y, y2 = _check_labels("y", y, scan=False), _check_labels("y2", y2, scan=False)
    batch = check_same_batch(logits=logits, y=y, y2=y2)
    lam = _check_lam_shape(lam, batch)
    if isinstance(lam, torch.Tensor):
        lam = lam.to(logits.device, logits.dtype)
    y, y2 = y.to(logits.device), y2.to(logits.device)

    log_p = F.log_softmax(logits, dim=1)  # shared by both terms: half the work of two cross_entropy calls

    def ce(labels: torch.Tensor, reduction: str) -> torch.Tensor:
        return F.nll_loss(log_p, labels, reduction=reduction, ignore_index=_NO_CLASS)

    try:
        if isinstance(lam, float) and reduction != "none":
            loss = lam * ce(y, reduction) + (1 - lam) * ce(y2, reduction)  # reduce first: fewer operations
        else:
            loss = _reduce(lam * ce(y, "none") + (1 - lam) * ce(y2, "none"), reduction)
    except IndexError:  # a label out of range: say which
        try:
            _check_labels("y", y, logits.shape[1])
            _check_labels("y2", y2, logits.shape[1])
        except ValueError as problem:
            raise problem from None  # the IndexError from inside torch would only add noise
        raise
    value = loss.detach()
    if math.isnan(float(value if value.dim() == 0 else value.sum())):
        _check_logits(logits)
    return loss


def _match_target(name: str, target: object, pred: torch.Tensor) -> torch.Tensor:
    target = check_tensor(name, target, min_dim=1)
    if target.shape != pred.shape:
        # (B,) against (B, 1) is the one mismatch we forgive: a scalar target per example.
        batch = pred.shape[0]
        if {tuple(target.shape), tuple(pred.shape)} == {(batch,), (batch, 1)}:
            return target.reshape(pred.shape)
        raise ValueError(f"{name} must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    return target


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
    pred = check_tensor("pred", pred, min_dim=1)
    y = _match_target("y", y, pred)
    y2 = _match_target("y2", y2, pred)
    batch = check_same_batch(pred=pred, y=y, y2=y2)
    lam = _per_example(_check_lam_shape(lam, batch), pred)
    residual = lam * y + (1 - lam) * y2 - pred
    return _reduce(0.5 * residual.pow(2).reshape(batch, -1).sum(dim=1), reduction)
