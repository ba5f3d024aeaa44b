"""Argument checks shared by the public functions of :mod:`mixlib`.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the
argument and says what was expected, so a learner sees what to fix instead of a
shape error three frames deep inside PyTorch.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch


def check_tensor(name: str, value: object, *, floating: bool = True, min_dim: int = 0) -> torch.Tensor:
    """Return ``value`` if it is a tensor suitable for differentiable maths, else raise."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    check_not_meta(name, value)
    if floating and not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {value.dtype}; "
            f"convert it with {name}.float()"
        )
    if value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(value.shape)}")
    if value.is_floating_point() and bool(torch.isnan(value).any()):
        raise ValueError(f"{name} contains NaN")
    return value


def check_not_meta(name: str, value: torch.Tensor) -> None:
    """Raise if ``value`` is a meta tensor (a shape without data, nothing to compute with)."""
    if value.is_meta:
        raise ValueError(f"{name} is a meta tensor (a shape without data); pass a tensor with values")


def check_same_batch(**tensors: torch.Tensor) -> int:
    """Check that all tensors share their first dimension and return it."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sizes.items())
        raise ValueError(f"batch sizes differ: {listed}; they must be equal")
    return next(iter(sizes.values()))


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


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """Return ``generator`` if it is ``None`` or a ``torch.Generator``, else raise."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__}; "
            "make one with torch.Generator().manual_seed(seed)"
        )
    return generator


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


def check_fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` as a float if ``low < value < high``, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (low < value < high):
        raise ValueError(f"{name} must be strictly between {low} and {high}, got {value}")
    return float(value)


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
