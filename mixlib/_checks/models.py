"""Checks of models, measurements and the other arguments that are not plain values."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

import torch
from torch import nn

from .values import check_labels, check_nonempty, check_num_classes, check_positive_int, check_same_batch, check_tensor


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


def check_model_input(name: str, x: torch.Tensor, model: torch.nn.Module, model_name: str = "model") -> None:
    """Raise if the floating-point dtype of ``x`` differs from that of ``model``'s parameters.

    A float64 (or float16) batch against a float32 model fails deep inside the first layer; saying
    which argument to convert is more use. ``model_name`` is what the message calls the model.
    """
    for p in model.parameters():
        if p.is_floating_point():
            if x.dtype != p.dtype:
                raise TypeError(f"{name} has dtype {x.dtype} but the {model_name}'s parameters are {p.dtype}; "
                                f"convert it with {name}.to({p.dtype})")
            return


def model_error(name: str, x: torch.Tensor, problem: Exception, detail: str = "") -> ValueError:
    """A ``ValueError`` naming ``x`` for a model that could not be applied to it.

    ``detail`` (say, the shape that was expected) goes between the shape and the model's own message.
    """
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
    inner = "the model cannot be applied to "
    if first.startswith(inner) and ": " in first:  # a model that checks its input (StagedNet) said it already
        first = first.split(": ", 1)[1]
    return ValueError(f"the model cannot be applied to {name} of shape {tuple(x.shape)}{detail}: {first}")


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


def check_data(
    model: nn.Module, x: object, y: object, device: torch.device, names: tuple[str, str] = ("x", "y")
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Check a data set against ``model`` and move it to ``device``.

    Returns ``(x, y, num_classes)`` with ``num_classes=None`` for float (regression) targets.
    """
    xn, yn = names
    x = check_tensor(xn, x, min_dim=1)
    y = check_tensor(yn, y, floating=False, min_dim=1)
    for name, t in ((xn, x), (yn, y)):
        if t.is_meta:
            raise ValueError(f"{name} is a meta tensor (shape only, no data); pass real data")
    if x.shape[0] == 0:
        raise ValueError(f"{xn} must hold at least one example, got shape {tuple(x.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{xn} and {yn} must have the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes and x.dtype not in dtypes:
        want = next(iter(dtypes))
        raise TypeError(
            f"{xn} has dtype {x.dtype} but the model's parameters are {want}; convert with {xn}.to({want})"
        )
    x, y = x.to(device), y.to(device)
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{yn} must hold integer class labels (int64) or float regression targets, got {y.dtype}")
    try:
        with torch.no_grad():
            out = model(x[:1])  # one trial example: the model and the data fit together
    except RuntimeError as problem:
        raise model_error(xn, x, problem) from None
    except ValueError as problem:  # a model that checks its input (StagedNet) calls it x
        if xn == "x":
            raise
        raise ValueError(f"{xn}: {problem}") from None
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor for {xn}, got {type(out).__name__}")
    if y.is_floating_point():
        if y.dim() == 2 and y.shape[1] > 1:
            raise ValueError(
                f"{yn} has shape {tuple(y.shape)}: for classification pass integer class labels of shape "
                f"({y.shape[0]},) (mixlib builds the one-hot targets); float targets of shape (n,) mean regression"
            )
        if y.dim() > 2:
            raise ValueError(f"{yn} must have shape (n,) for regression targets, got {tuple(y.shape)}")
        if out.numel() != 1:
            raise ValueError(
                f"{yn} holds float targets, which mean regression, but the model returns {out.numel()} outputs "
                f"per example; for classification pass integer class labels (int64) of shape ({y.shape[0]},)"
            )
        return x, y.reshape(-1), None  # one target per example
    if y.dim() != 1:
        raise ValueError(f"{yn} must hold one class label per example, shape ({y.shape[0]},), got {tuple(y.shape)}")
    if out.dim() != 2:
        raise ValueError(f"for class labels {yn} the model must return logits of shape (n, classes) for {xn}, "
                         f"got {tuple(out.shape)}")
    width = out.shape[1]
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= width:
        raise ValueError(
            f"{yn} must hold class labels in [0, {width - 1}] (the model has {width} outputs), "
            f"got values from {low} to {high}"
        )
    return x, y.long(), width


def check_device(device: object, default: torch.device) -> torch.device:
    """Return ``device`` as a ``torch.device`` that can train (``default`` for ``None``), else raise."""
    if device is None:
        return default
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a torch.device or a name such as 'cpu' or 'cuda', got {device!r}")
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(f"device must be a torch.device or a name such as 'cpu' or 'cuda', got {device!r}") from None
    if device.type == "meta":
        raise ValueError("device='meta' holds shapes without data; training needs a real device such as 'cpu'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but CUDA is not available here; use 'cpu'")
    return device
