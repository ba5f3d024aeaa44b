"""Datasets for the book: synthetic, or shipped inside scikit-learn. Nothing is downloaded.

Every loader takes a ``seed`` and returns a :class:`Split` of float tensors, so a notebook
that calls it twice gets the same numbers twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split

from ._checks import (
    check_batch,
    check_fraction,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_seed,
    check_targets,
    check_tensor,
)


@dataclass(frozen=True)
class Split:
    """A seeded train/test split.

    Attributes:
        x_train: inputs, float32, shape ``(n_train, d)``.
        y_train: targets: int64 class labels ``(n_train,)`` for classification,
            float32 ``(n_train,)`` for regression.
        x_test: held-out inputs.
        y_test: held-out targets.
        num_classes: number of classes, or ``None`` for a regression task.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None

    def __post_init__(self) -> None:
        n = self.num_classes
        if n is not None and (isinstance(n, bool) or not isinstance(n, Integral) or n < 1):
            raise ValueError(f"num_classes must be an int >= 1, or None for regression targets, got {n!r}")
        for xn, yn in (("x_train", "y_train"), ("x_test", "y_test")):
            x = check_tensor(xn, getattr(self, xn), min_dim=2)
            y = check_tensor(yn, getattr(self, yn), floating=False, min_dim=1)
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{yn} must have shape ({x.shape[0]},), one target per row of {xn}, "
                                 f"got {tuple(y.shape)}")
            if n is None and not y.is_floating_point():
                raise TypeError(f"{yn} must hold float targets when num_classes is None (regression), got {y.dtype}")
            if n is not None:
                if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                    raise TypeError(f"{yn} must hold integer class labels when num_classes is given, got {y.dtype}")
                if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
                    raise ValueError(f"{yn} must hold class labels in [0, {n - 1}], "
                                     f"got values from {int(y.min())} to {int(y.max())}")
                object.__setattr__(self, yn, y.long())
        if self.x_test.shape[1:] != self.x_train.shape[1:] or self.x_test.dtype != self.x_train.dtype:
            raise ValueError(f"x_test must have x_train's row shape {tuple(self.x_train.shape[1:])} and dtype "
                             f"{self.x_train.dtype}, got {tuple(self.x_test.shape[1:])} and {self.x_test.dtype}")

    @property
    def input_dim(self) -> int:
        """Number of input features."""
        return self.x_train.shape[1]

    def __repr__(self) -> str:
        task = "regression" if self.num_classes is None else f"{self.num_classes} classes"
        return (
            f"Split({task}, train {tuple(self.x_train.shape)}, test {tuple(self.x_test.shape)})"
        )


# scikit-learn's random_state takes seeds below 2**32.
_SEEDS_BELOW = 2**32


def _check_split_sizes(test_size: float, n: int, classes: int) -> None:
    """Raise if ``test_size`` leaves the test or the training set without an example of each class.

    The sizes are scikit-learn's: ``ceil(test_size * n)`` test examples and the rest for training;
    a stratified split needs at least ``classes`` on each side (``classes = 1`` for regression).
    """
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    side = "a class without a test example" if classes > 1 else "no test example"
    if n_test < classes:
        raise ValueError(
            f"test_size={test_size} holds out {n_test} of the {n} examples, {side}: a stratified split needs at "
            f"least one test example of each of the {classes} classes; use test_size >= {classes}/{n}"
        )
    if n_train < classes:
        what = f"one training example of each of the {classes} classes" if classes > 1 else "one training example"
        raise ValueError(
            f"test_size={test_size} leaves {n_train} of the {n} examples for training; the split needs at least "
            f"{what}; use test_size <= {n - classes}/{n}"
        )


def _split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int, classification: bool) -> Split:
    _check_split_sizes(test_size, len(y), len(np.unique(y)) if classification else 1)
    stratify = y if classification else None
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    label_dtype = torch.int64 if classification else torch.float32
    return Split(
        x_train=torch.as_tensor(x_tr, dtype=torch.float32),
        y_train=torch.as_tensor(y_tr, dtype=label_dtype),
        x_test=torch.as_tensor(x_te, dtype=torch.float32),
        y_test=torch.as_tensor(y_te, dtype=label_dtype),
        num_classes=int(y.max()) + 1 if classification else None,
    )


def two_moons(n: int = 400, noise: float = 0.15, test_size: float = 0.5, seed: int = 0) -> Split:
    """scikit-learn's two interleaving half circles, two classes, standardised.

    Args:
        n: total number of points (train and test), at least 8.
        noise: standard deviation of the Gaussian noise added to each point, >= 0.
        test_size: fraction held out for testing, in (0, 1).
        seed: seed for the points and the split.
    """
    n = check_positive_int("n", n)
    if n < 8:
        raise ValueError(f"n must be >= 8 so both classes reach both splits, got {n}")
    noise = check_nonnegative("noise", noise)
    test_size = check_fraction("test_size", test_size)
    seed = check_seed("seed", seed, high=_SEEDS_BELOW)
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return _split(x, y, test_size, seed, classification=True)


def spirals(
    n: int = 600, turns: float = 1.5, noise: float = 0.05, num_classes: int = 2,
    test_size: float = 0.5, seed: int = 0,
) -> Split:
    """Interleaved 2-D spiral arms, one arm per class.

    Arm ``c`` is the curve ``r (cos(theta + 2 pi c / K), sin(theta + 2 pi c / K))`` with
    ``r`` from 0.1 to 1 and ``theta = 2 pi turns r``, plus Gaussian noise.

    Args:
        n: total number of points, split evenly across the arms.
        turns: how many times each arm winds around the origin, > 0.
        noise: standard deviation of the noise, >= 0.
        num_classes: number of arms (classes), >= 2.
        test_size: fraction held out for testing, in (0, 1).
        seed: seed for the points and the split.
    """
    n = check_positive_int("n", n)
    turns = check_positive("turns", turns)
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if n < 4 * num_classes:
        raise ValueError(f"n must be >= 4 * num_classes = {4 * num_classes}, got {n}")
    noise = check_nonnegative("noise", noise)
    test_size = check_fraction("test_size", test_size)
    seed = check_seed("seed", seed, high=_SEEDS_BELOW)
    rng = np.random.default_rng(seed)
    per_class = n // num_classes
    xs, ys = [], []
    for c in range(num_classes):
        r = rng.uniform(0.1, 1.0, per_class)
        theta = 2 * math.pi * turns * r + 2 * math.pi * c / num_classes
        arm = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
        xs.append(arm + noise * rng.standard_normal(arm.shape))
        ys.append(np.full(per_class, c))
    return _split(np.concatenate(xs), np.concatenate(ys), test_size, seed, classification=True)


def regression_1d(
    n: int = 200, noise: float = 0.1, test_size: float = 0.5, seed: int = 0
) -> Split:
    """A 1-D regression task: ``y = sin(3 x) + 0.3 x`` plus Gaussian noise, ``x`` uniform on [-2, 2].

    Inputs have shape ``(n, 1)`` and targets shape ``(n,)``, both float32.

    Args:
        n: total number of points, at least 4.
        noise: standard deviation of the noise on ``y``, >= 0.
        test_size: fraction held out for testing, in (0, 1).
        seed: seed for the points and the split.
    """
    n = check_positive_int("n", n)
    if n < 4:
        raise ValueError(f"n must be >= 4, got {n}")
    noise = check_nonnegative("noise", noise)
    test_size = check_fraction("test_size", test_size)
    seed = check_seed("seed", seed, high=_SEEDS_BELOW)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    y = np.sin(3 * x[:, 0]) + 0.3 * x[:, 0] + noise * rng.standard_normal(n)
    return _split(x, y, test_size, seed, classification=False)


def digits(test_size: float = 0.3, seed: int = 0, per_class: int | None = None) -> Split:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

    Pixels (0 to 16) are scaled to [0, 1] and flattened to 64 features. The split is
    stratified by class.

    Args:
        test_size: fraction held out for testing, in (0, 1).
        seed: seed for the split (and for the choice of the kept examples with ``per_class``).
        per_class: keep only this many training examples of each class (the few-labels regime);
            the test set is unchanged. ``None`` keeps them all.
    """
    test_size = check_fraction("test_size", test_size)
    seed = check_seed("seed", seed, high=_SEEDS_BELOW)
    bunch = load_digits()
    split = _split(bunch.data / 16.0, bunch.target, test_size, seed, classification=True)
    if per_class is None:
        return split
    per_class = check_positive_int("per_class", per_class)
    counts = torch.bincount(split.y_train, minlength=split.num_classes)
    if per_class > int(counts.min()):
        raise ValueError(f"per_class must be at most {int(counts.min())} (the rarest class's count), got {per_class}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split.y_train), generator=generator)
    keep = torch.cat([order[split.y_train[order] == c][:per_class] for c in range(split.num_classes)]).sort().values
    return Split(split.x_train[keep], split.y_train[keep], split.x_test, split.y_test, split.num_classes)


def corrupt_labels(split: Split, fraction: float, seed: int = 0) -> Split:
    """Symmetric label noise on the training labels; the test labels stay clean.

    Exactly ``round(fraction * n_train)`` training examples, chosen uniformly at random, get a
    label drawn uniformly from the *other* classes, so ``fraction`` is the share of wrong
    training labels (a definition that draws from all classes would leave a ``1/C`` share of the
    chosen labels correct).

    Args:
        split: a classification :class:`Split`.
        fraction: share of training labels to corrupt, in [0, 1).
        seed: seed for which labels change and what they become.

    Returns:
        A new :class:`Split` with the same inputs and test labels.
    """
    if not isinstance(split, Split):
        raise TypeError(f"split must be a mixlib Split (for example mixlib.digits()), got {type(split).__name__}")
    if split.num_classes is None:
        raise ValueError("split must be a classification split; label noise needs class labels")
    if split.num_classes < 2:
        raise ValueError("split must have at least 2 classes to corrupt labels")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    seed = check_seed("seed", seed, high=_SEEDS_BELOW)
    generator = torch.Generator().manual_seed(seed)
    n = len(split.y_train)
    chosen = torch.randperm(n, generator=generator)[: round(fraction * n)]
    # Adding 1..C-1 modulo C moves a label to a uniformly random other class.
    shift = torch.randint(1, split.num_classes, (len(chosen),), generator=generator)
    noisy = split.y_train.clone()
    noisy[chosen] = (noisy[chosen] + shift) % split.num_classes
    return Split(split.x_train, noisy, split.x_test, split.y_test, split.num_classes)


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
):
    """Yield shuffled mini-batches ``(x_b, y_b)``; the last one may be smaller.

    Args:
        x: inputs, floating point, first dimension is the example index.
        y: targets with the same first dimension: integer class labels ``(n,)`` or float
            regression targets ``(n,)`` (or ``(n, 1)``), as in a :class:`Split`.
        batch_size: examples per batch, >= 1.
        generator: controls the shuffle; ``None`` uses torch's global generator.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    # type and shape only, no pass over the values: this runs once per epoch of training
    check_batch("x", x, scan=False, hint="the features go into a model: convert them with x.float()")
    check_targets("y", y)
    check_generator(generator)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    order = torch.randperm(x.shape[0], generator=generator)
    for start in range(0, x.shape[0], batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
