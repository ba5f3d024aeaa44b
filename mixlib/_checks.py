"""Argument checks shared by the public functions of :mod:`mixlib`.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the
argument and says what was expected, so a learner sees what to fix instead of a
shape error three frames deep inside PyTorch.
"""

from __future__ import annotations

import math
from numbers import Real

import torch


def check_tensor(name: str, value: object, *, floating: bool = True, min_dim: int = 0) -> torch.Tensor:
    """Return ``value`` if it is a tensor suitable for differentiable maths, else raise."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
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
    """Return ``value`` if it is an integer >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


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
