"""Checks of values: tensors, numbers, mixing weights, pairings, labels and logits."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real

import torch

REDUCTIONS = ("mean", "sum", "none")


# --- tensors ----------------------------------------------------------------------------------


def check_not_meta(name: str, value: torch.Tensor) -> None:
    """Raise if ``value`` is a meta tensor (a shape without data, nothing to compute with)."""
    if value.is_meta:
        raise ValueError(f"{name} is a meta tensor (a shape without data); pass a tensor with values")


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise if the floating-point tensor ``t`` holds NaN or an infinity.

    One sum finds both (it is not finite when an entry is not), at a tenth of the cost of an
    elementwise test on an image batch; the elementwise test runs only then, to say which it is.
    """
    if not t.is_floating_point() or math.isfinite(float(t.detach().sum())):
        return
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} contains NaN")
    if bool(torch.isinf(t).any()):
        raise ValueError(f"{name} contains an infinite value (inf); pass finite numbers")


def _check_floating(name: str, value: object, hint: str | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    check_not_meta(name, value)
    if not value.is_floating_point():
        hint = hint or f"convert it with {name}.float()"
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}; {hint}")
    return value


def check_tensor(name: str, value: object, *, floating: bool = True, min_dim: int = 0) -> torch.Tensor:
    """Return ``value`` if it is a tensor suitable for differentiable maths (finite, floating), else raise."""
    if floating:
        value = _check_floating(name, value)
    elif not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    else:
        check_not_meta(name, value)
    if value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(value.shape)}")
    check_finite(name, value)
    return value


def check_batch(name: str, value: object, *, hint: str | None = None, scan: bool = True) -> torch.Tensor:
    """Return ``value`` if it is a floating-point batch ``(B, ...)``, else raise.

    ``scan=False`` leaves out the pass over the values (for hidden states in a training step).
    """
    value = _check_floating(name, value, hint)
    if value.dim() == 0:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
    if scan:
        check_finite(name, value)
    return value


def check_input(name: str, x: object) -> torch.Tensor:
    """A network's input: a tensor with a batch dimension (any dtype; constant time, no pass over the values)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_not_meta(name, x)
    if x.dim() == 0:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
    return x


def check_nonempty(name: str, value: torch.Tensor, what: str = "example") -> None:
    """Raise if the batch ``value`` holds no rows."""
    if len(value) == 0:
        raise ValueError(f"{name} must hold at least one {what}, got an empty batch of shape {tuple(value.shape)}")


def check_same_batch(**tensors: torch.Tensor) -> int:
    """Check that all tensors share their first dimension and return it."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sizes.items())
        raise ValueError(f"batch sizes differ: {listed}; they must be equal")
    return next(iter(sizes.values()))


def check_same_shape(name: str, value: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """Raise if ``value`` is not shaped like ``other``."""
    if value.shape != other.shape:
        raise ValueError(f"{name} must have the shape of {other_name} {tuple(other.shape)}, got {tuple(value.shape)}")


# --- numbers and choices ----------------------------------------------------------------------


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int if it is an integer >= 1 (NumPy integers included), else raise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_seed(name: str, value: object, high: int = 2**63) -> int:
    """Return ``value`` as an int if it is an integer in ``[0, high)``, else raise.

    torch reads a negative seed modulo ``2**64`` (``-1`` is ``2**64 - 1``), so a negative seed is
    refused rather than silently wrapped.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < high:
        raise ValueError(f"{name} must be an int in [0, 2**{high.bit_length() - 1}), got {value}")
    return int(value)


def check_seeds(seeds: object, size: int | None = None, distinct: bool = False) -> list[int]:
    """``seeds`` as a non-empty list of ints in ``[0, 2**63)`` (a list, a range or a NumPy array).

    ``size``: the number of seeds needed (one per model); ``distinct``: refuse a seed given twice.
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a collection of ints, for example range(10), got {type(seeds).__name__}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, Integral) or not 0 <= s < 2**63:
            raise ValueError(f"seeds must be ints in [0, 2**63), got {s!r}")
    if size is not None and len(seeds) != size:
        raise ValueError(f"seeds must be a sequence with one seed per model ({size}), got {len(seeds)} seeds")
    if distinct and len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return [int(s) for s in seeds]


def check_fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` as a float if ``low < value < high``, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (low < value < high):
        raise ValueError(f"{name} must be strictly between {low} and {high}, got {value}")
    return float(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_reduction(reduction: object, choices: Sequence[str] = REDUCTIONS) -> str:
    """Return ``reduction`` if it is one of ``choices`` (by default 'mean', 'sum' or 'none'), else raise."""
    if not isinstance(reduction, str) or reduction not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"reduction must be {listed}, got {reduction!r}")
    return reduction


def check_finite_number(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False``, else raise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_size(size: object) -> int | tuple[int, ...] | None:
    """``None``, an int >= 0 or a tuple of them: the shape of a batch of draws."""
    if size is None:
        return None
    many = isinstance(size, (tuple, list, torch.Size))
    dims = size if many else (size,)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, Integral):
            raise TypeError(f"size must be None, an int or a tuple of ints, got {size!r}")
        if d < 0:
            raise ValueError(f"size must hold dimensions >= 0, got {size!r}")
    return tuple(int(d) for d in dims) if many else int(size)


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """Return ``generator`` if it is ``None`` or a ``torch.Generator``, else raise."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__}; "
            "make one with torch.Generator().manual_seed(seed)"
        )
    return generator


# --- mixing: weights, pairings, labels, targets -----------------------------------------------


def check_lam(lam: object, name: str = "lam") -> float | torch.Tensor:
    """Check a mixing weight: a number or a tensor with every entry in [0, 1]."""
    if isinstance(lam, torch.Tensor):
        check_not_meta(name, lam)
        if not lam.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {lam.dtype}")
        if bool(torch.isnan(lam).any()):
            raise ValueError(f"{name} contains NaN")
        if bool(((lam < 0) | (lam > 1)).any()):
            low, high = lam.min().item(), lam.max().item()
            raise ValueError(f"{name} must lie in [0, 1]; got values from {low:.4g} to {high:.4g}")
        return lam
    if isinstance(lam, bool) or not isinstance(lam, Real):
        raise TypeError(f"{name} must be a float in [0, 1] or a tensor of them, got {type(lam).__name__}")
    if not (0.0 <= float(lam) <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1], got {lam}")
    return float(lam)


def check_lam_shape(lam: object, batch: int) -> float | torch.Tensor:
    """Check ``lam`` for a batch of ``batch``; return a float, a 0-d tensor or a ``(batch,)`` tensor.

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


def check_perm(perm: object, batch: int | None = None) -> torch.Tensor:
    """Check a pairing: a LongTensor with one index in ``[0, batch)`` per example.

    With ``batch=None`` only its type is checked (the batch size is not known yet).
    """
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"perm must be a torch.Tensor of indices, got {type(perm).__name__}")
    check_not_meta("perm", perm)
    if perm.dtype != torch.long:
        raise TypeError(f"perm must be a LongTensor (dtype torch.int64), got dtype {perm.dtype}")
    if batch is None:
        return perm
    if perm.shape != (batch,):
        raise ValueError(f"perm must have shape ({batch},), one index per example, got {tuple(perm.shape)}")
    if batch > 0:
        low, high = (int(v) for v in torch.aminmax(perm))
        if low < 0 or high >= batch:
            raise ValueError(f"perm must hold indices in [0, {batch - 1}], got values from {low} to {high}")
    return perm


def check_labels(name: str, labels: object, num_classes: int | None = None) -> torch.Tensor:
    """Check integer class labels of shape ``(B,)`` with values in ``[0, num_classes)``; return them as int64."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    check_not_meta(name, labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        hint = "; soft targets go to soft_cross_entropy" if labels.is_floating_point() else ""
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}{hint}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must have shape (B,), got {tuple(labels.shape)}")
    if labels.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or (num_classes is not None and high >= num_classes):
            allowed = ">= 0" if num_classes is None else f"in [0, {num_classes - 1}]"
            raise ValueError(f"{name} must be class indices {allowed}, got values from {low} to {high}")
    return labels.long()


def check_targets(name: str, y: object) -> torch.Tensor:
    """Targets of a data set, one per example: integer class labels ``(B,)`` or float regression targets.

    Float targets may be shaped ``(B,)`` or ``(B, 1)``. Constant time: the values are not read (no
    scan for NaN or for labels out of range), so it suits a check made once per epoch.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of targets, got {type(y).__name__}")
    check_not_meta(name, y)
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must hold integer class labels (int64) or float regression targets, got {y.dtype}")
    if y.dim() == 0:
        raise ValueError(f"{name} must have a first dimension indexing the examples, got a 0-d tensor")
    batch = y.shape[0]
    if y.is_floating_point():
        if y.dim() > 2 or (y.dim() == 2 and y.shape[1] != 1):
            raise ValueError(
                f"{name} has shape {tuple(y.shape)}: float targets mean regression, one per example, shape "
                f"({batch},); for classification pass integer class labels (int64) of shape ({batch},), not "
                "one-hot or soft rows"
            )
    elif y.dim() != 1:
        raise ValueError(f"{name} must hold one class label per example, shape ({batch},), got {tuple(y.shape)}")
    return y


def check_num_classes(num_classes: object) -> int | None:
    """``None`` (classes not known) or an int >= 1."""
    return None if num_classes is None else check_positive_int("num_classes", num_classes)


def check_logits(logits: object, name: str = "logits") -> torch.Tensor:
    """Check a batch of scores, shape ``(B, C)``, finite and floating point."""
    logits = check_tensor(name, logits)
    if logits.dim() != 2:
        raise ValueError(f"{name} must have shape (B, num_classes), got {tuple(logits.shape)}")
    return logits


def check_probability_rows(name: str, target: object, logits: torch.Tensor, *, sum_to_one: bool) -> torch.Tensor:
    """Check a target per row of ``logits``: entries in [0, 1] and, with ``sum_to_one``, rows that sum to one."""
    target = check_tensor(name, target)
    check_same_shape(name, target, "logits", logits)
    if bool(((target < 0) | (target > 1)).any()):
        raise ValueError(f"{name} must hold probabilities in [0, 1] (for example mixed one-hot rows)")
    if sum_to_one and target.numel() > 0:
        sums = target.double().sum(dim=1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            worst = float(sums[(sums - 1).abs().argmax()])
            raise ValueError(f"{name} must hold probability rows that sum to one, got a row summing to {worst:.4g}")
    return target


def check_one_per_example(name: str, y: torch.Tensor, batch: int) -> torch.Tensor:
    """One number per example (a scalar input or target), shaped ``(B,)`` or ``(B, 1)``; returned as ``(B,)``."""
    if y.shape not in ((batch,), (batch, 1)):
        raise ValueError(f"{name} must have shape ({batch},) or ({batch}, 1), got {tuple(y.shape)}")
    return y.reshape(batch)


def check_target_like(name: str, target: object, pred: torch.Tensor) -> torch.Tensor:
    """A target shaped like ``pred``; a ``(B,)`` target for a ``(B, 1)`` prediction (or back) is reshaped."""
    target = check_tensor(name, target, min_dim=1)
    batch = pred.shape[0]
    if target.shape != pred.shape and {tuple(target.shape), tuple(pred.shape)} == {(batch,), (batch, 1)}:
        return target.reshape(pred.shape)
    check_same_shape(name, target, "pred", pred)
    return target


def check_residuals(residuals: object) -> torch.Tensor:
    """Residuals of any shape, at least one of them; returned flattened, in float64."""
    residuals = check_tensor("residuals", residuals, min_dim=1).reshape(-1)
    check_nonempty("residuals", residuals, "residual")
    return residuals.double()


def check_batch_size(batch_size: object, n: int) -> int:
    """A mini-batch size in ``1..n``; ``None`` means all ``n``."""
    if batch_size is None:
        return n
    batch_size = check_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be at most the number of residuals ({n}), got {batch_size}")
    return batch_size
