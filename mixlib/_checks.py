"""Argument checks for the public functions of :mod:`mixlib`.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the argument and
says what was expected, so a learner sees what to fix instead of a shape error three frames
deep inside PyTorch. The public functions call them once, on entry; the maths after that is
written without them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real

import torch
from torch import nn

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
            upper = "" if num_classes is None else f", {num_classes - 1}"
            raise ValueError(f"{name} must be class indices in [0{upper}], got values from {low} to {high}")
    return labels.long()


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


def check_knots(knots: object, values: object) -> tuple[torch.Tensor, torch.Tensor]:
    """At least two distinct 1-D positions and one value for each; returned flattened and detached."""
    knots = check_tensor("knots", knots, min_dim=1).detach().reshape(-1)
    values = check_tensor("values", values, min_dim=1).detach().reshape(-1)
    if knots.numel() < 2:
        raise ValueError(f"knots must hold at least 2 points, got {knots.numel()}")
    if values.shape != knots.shape:
        raise ValueError(f"values must have one entry per knot, shape {tuple(knots.shape)}, got {tuple(values.shape)}")
    if len(torch.unique(knots)) < len(knots):
        raise ValueError("knots must be distinct")
    return knots, values


# --- measurements of representations --------------------------------------------------------


def check_class_rows(
    h: object, labels: object, num_classes: object = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Representations ``(N, ...)`` and their class labels ``(N,)``, at least one of them.

    Returns the representations flattened to rows ``(N, d)`` and detached, and the labels as int64.
    """
    h = check_tensor("h", h, min_dim=1)
    check_nonempty("h", h, "representation")
    labels = check_labels("labels", labels, check_num_classes(num_classes))
    check_same_batch(h=h, labels=labels)
    return h.detach().reshape(len(h), -1), labels


def check_subspace(points: object, mean: object, basis: object) -> None:
    """Points ``(N, d)``, a mean ``(d,)`` and a basis ``(d, k)``."""
    points = check_tensor("points", points, min_dim=2)
    mean = check_tensor("mean", mean, min_dim=1)
    basis = check_tensor("basis", basis, min_dim=2)
    d = points.shape[1]
    if mean.shape != (d,) or basis.shape[0] != d:
        raise ValueError(f"mean must have shape ({d},) and basis ({d}, k); got {tuple(mean.shape)} and "
                         f"{tuple(basis.shape)}")


def check_point_sets(points: object, reference: object, allowed: object) -> None:
    """Points ``(Q, d)``, reference points ``(N, d)`` (at least one) and an optional boolean mask ``(Q, N)``."""
    points = check_tensor("points", points, min_dim=2)
    reference = check_tensor("reference", reference, min_dim=2)
    if points.dim() != 2 or reference.dim() != 2 or points.shape[1] != reference.shape[1]:
        raise ValueError(f"points and reference must have shapes (Q, d) and (N, d), "
                         f"got {tuple(points.shape)} and {tuple(reference.shape)}")
    check_nonempty("reference", reference, "point")
    if allowed is not None:
        if not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool:
            raise TypeError("allowed must be a boolean tensor")
        if allowed.shape != (len(points), len(reference)):
            raise ValueError(f"allowed must have shape {(len(points), len(reference))}, got {tuple(allowed.shape)}")


# --- models -----------------------------------------------------------------------------------


def check_module(name: str, value: object, example: str = "") -> nn.Module:
    """Return ``value`` if it is an ``nn.Module``, else raise."""
    if not isinstance(value, nn.Module):
        example = f" (for example {example})" if example else ""
        raise TypeError(f"{name} must be an nn.Module{example}, got {type(value).__name__}")
    return value


def check_affine_head(head: object) -> nn.Linear:
    """An affine head with one output: an ``nn.Linear(d, 1)``."""
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an affine nn.Linear with one output, got {type(head).__name__}")
    if head.out_features != 1:
        raise ValueError(f"head must have out_features == 1 (a scalar output), got {head.out_features}")
    return head


def check_callable(name: str, value: object) -> None:
    """Raise if ``value`` cannot be called like a network."""
    if not callable(value):
        raise TypeError(f"{name} must be a callable network (an nn.Module), got {type(value).__name__}")


def check_model_input(name: str, x: torch.Tensor, model: torch.nn.Module) -> None:
    """Raise if the floating-point dtype of ``x`` differs from that of ``model``'s parameters.

    A float64 batch against a float32 model fails deep inside the first layer; saying which
    argument to convert is more use.
    """
    for p in model.parameters():
        if p.is_floating_point():
            if x.dtype != p.dtype:
                raise TypeError(f"{name} has dtype {x.dtype} but the model's parameters are {p.dtype}; "
                                f"convert it with {name}.to({p.dtype})")
            return


def model_error(name: str, x: torch.Tensor, problem: RuntimeError) -> ValueError:
    """A ``ValueError`` naming ``x`` for a model that could not be applied to it."""
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
    return ValueError(f"the model cannot be applied to {name} of shape {tuple(x.shape)}: {first}")


def check_blocks(blocks: object) -> list[nn.Module]:
    """The stages of a network: a list (or ``nn.Sequential``/``nn.ModuleList``) of modules."""
    if isinstance(blocks, nn.Module) and not isinstance(blocks, (nn.Sequential, nn.ModuleList)):
        raise TypeError(f"blocks must be a list of nn.Module stages, got a single {type(blocks).__name__}")
    try:
        blocks = list(blocks)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"blocks must be a list of nn.Module stages, got {type(blocks).__name__}") from None
    for i, block in enumerate(blocks):
        check_module(f"blocks[{i}]", block)
    return blocks


def check_layer_set(eligible_layers: object, n_layers: int) -> tuple[int, ...]:
    """A non-empty collection of layers in ``0..n_layers-1``, returned sorted without repeats."""
    bad_type = f"eligible_layers must be a collection of ints such as [0, 1], got {eligible_layers!r}"
    if isinstance(eligible_layers, (str, bytes, Integral)) or not isinstance(eligible_layers, Iterable):
        raise TypeError(bad_type)
    try:
        eligible = sorted(set(eligible_layers))
    except TypeError:
        raise TypeError(bad_type) from None
    if not eligible:
        raise ValueError("eligible_layers must contain at least one layer")
    for k in eligible:
        if isinstance(k, bool) or not isinstance(k, Integral) or not 0 <= k < n_layers:
            raise ValueError(
                f"eligible_layers must hold ints in 0..{n_layers - 1} (the input to each block, "
                f"and the output of the last), got {k!r}"
            )
    return tuple(int(k) for k in eligible)


def check_layer(layer: object, allowed: tuple[int, ...], which: str = "layers") -> int:
    """Return ``layer`` as an int if it is one of ``allowed``, else raise."""
    if isinstance(layer, bool) or not isinstance(layer, Integral) or int(layer) not in allowed:
        raise ValueError(f"layer must be one of the {which} {allowed}, got {layer!r}")
    return int(layer)


def check_widths(hidden: object) -> list[int]:
    """Hidden widths: an int or a list of ints >= 1."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (Integral, Iterable)):
        raise TypeError(f"hidden must be an int or a list of ints (the hidden widths), got {hidden!r}")
    widths = [hidden] if isinstance(hidden, Integral) else list(hidden)
    return [check_positive_int("hidden", w) for w in widths]
