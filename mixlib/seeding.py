"""Seeding: one call makes a notebook or a test repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch

from ._checks import check_seed


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded with ``seed``.

    Code that takes a ``generator`` argument should be passed the returned generator, so
    that its randomness does not depend on what ran before it.

    It also makes PyTorch use one CPU thread: the book's models are small enough that more
    threads barely help (and slow down badly when other processes compete for the cores),
    and a fixed thread count keeps floating-point sums in the same order on every machine.
    """
    seed = check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return make_generator(seed)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``, an int in ``[0, 2**63)``."""
    return torch.Generator().manual_seed(check_seed("seed", seed))


def device() -> torch.device:
    """CUDA when present, else CPU. Nothing in the book requires a GPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
