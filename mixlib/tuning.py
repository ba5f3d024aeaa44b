"""A fair baseline: every arm's learning rate and stopping epoch chosen on held-out *training* data.

A gain over an untuned or over-trained baseline is a statement about the baseline. So before two
training methods are compared, each gets the same treatment: a small learning-rate sweep, and the
epoch at which to stop, both chosen on a part of the *training* set held out from fitting (with
its labels as they are, noise included), never on the test set. :func:`tune` does this for one
arm, with every learning rate and seed of the sweep trained at once as one ensemble
(:func:`mixlib.ensemble.fit_ensemble`, whose members may differ in learning rate); the chosen
settings are then used to train on the whole training set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._checks import check_fraction, check_positive, check_positive_int, check_seed, check_seeds
from .data import Split
from .ensemble import fit_ensemble, stackable
from .recipe import Recipe
from .seeding import seed_everything
from .train import fit

__all__ = ["Choice", "holdout_split", "tune"]


@dataclass(frozen=True)
class Choice:
    """What :func:`tune` chose, and the held-out curves it chose from.

    Attributes:
        lr: the chosen learning rate.
        epoch: the chosen number of epochs.
        score: the mean held-out score over the seeds at that choice (accuracy, or mean squared
            error for regression).
        curves: ``{lr: [mean held-out score at each epoch 1, 2, ...]}``.
    """

    lr: float
    epoch: int
    score: float
    curves: dict[float, list[float]]


def holdout_split(data: Split, fraction: float = 0.2, seed: int = 2026) -> Split:
    """The training set of ``data`` split in two: a part to fit on, and a held-out part to choose with.

    The returned :class:`~mixlib.data.Split` has the fitting part as ``x_train``/``y_train`` and the
    held-out part as ``x_test``/``y_test``; the held-out labels are the *training* labels, so with
    label noise they are as noisy as the ones the model fits. The rows are drawn by a permutation
    from ``seed`` (a stream of its own, not the one that chose noisy labels).
    """
    if not isinstance(data, Split):
        raise TypeError(f"data must be a mixlib Split, got {type(data).__name__}")
    fraction = check_fraction("fraction", fraction)
    n = len(data.x_train)
    held = int(round(fraction * n))
    if not 1 <= held < n:
        raise ValueError(f"fraction={fraction} of {n} training examples leaves no example on one side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    keep, out = order[held:].to(data.x_train.device), order[:held].to(data.x_train.device)
    return Split(data.x_train[keep], data.y_train[keep], data.x_train[out], data.y_train[out], data.num_classes)


def tune(
    build: Callable[[], nn.Module],
    data: Split,
    arm: Mapping[str, Any] | Recipe,
    *,
    seeds: Iterable[int],
    lrs: Sequence[float] = (3e-4, 1e-3, 3e-3),
    epochs: int = 60,
    fraction: float = 0.2,
    split_seed: int = 2026,
    **fit_kwargs: Any,
) -> Choice:
    """Choose ``arm``'s learning rate and stopping epoch on held-out training data.

    Every ``(lr, seed)`` pair is trained for ``epochs`` epochs on the fitting part of
    :func:`holdout_split` (``fraction`` held out, rows drawn from ``split_seed``), starting from
    ``build()`` after ``seed_everything(seed)`` as :func:`mixlib.experiments.compare_methods` starts
    it; the held-out score is recorded after every epoch and averaged over the seeds. The choice is
    the ``(lr, epoch)`` with the best mean: the highest accuracy, or the lowest mean squared error.
    Ties go to the smaller learning rate and the earlier epoch.

    Args:
        build: makes a fresh model; :func:`~mixlib.manifold.mlp` networks train as one ensemble.
        data: the split whose *training* part is used (its test part is never looked at).
        arm: the arm, a :class:`~mixlib.recipe.Recipe` or its fields (``{"method": "manifold", ...}``).
        seeds: the seeds whose mean decides.
        lrs: the learning rates of the sweep.
        epochs: the longest training considered.
        fraction: the share of the training set held out.
        split_seed: the seed of the held-out rows.
        **fit_kwargs: other arguments of :func:`~mixlib.train.fit` (``batch_size``, ...).

    Returns:
        The :class:`Choice`; train the arm on the whole training set with ``lr=choice.lr`` and
        ``epochs=choice.epoch``.
    """
    if isinstance(build, nn.Module) or not callable(build):
        raise TypeError(f"build must be a function that returns a new model, got {type(build).__name__}")
    seeds = check_seeds(seeds, distinct=True)
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise TypeError(f"lrs must be a non-empty sequence of learning rates, got {lrs!r}")
    lrs = [check_positive("lrs[i]", lr) for lr in lrs]
    epochs = check_positive_int("epochs", epochs)
    spec = {"recipe": arm} if isinstance(arm, Recipe) else dict(arm)
    clash = set(spec) & {"lr", "epochs", "seed", "x_test", "y_test", "eval_every"} | (
        set(fit_kwargs) & {"lr", "epochs", "seed", "seeds", "x_test", "y_test", "eval_every"})
    if clash:
        raise ValueError(f"tune sets {sorted(clash)} itself; pass the sweep as lrs= and the longest run as epochs=")
    held = holdout_split(data, fraction, split_seed)
    runs = [(lr, seed) for lr in lrs for seed in seeds]
    models = []
    for _, seed in runs:
        seed_everything(seed)
        models.append(build())
    kwargs = dict(fit_kwargs, **spec, epochs=epochs, x_test=held.x_test, y_test=held.y_test, eval_every=1)
    kwargs.setdefault("progress", False)
    if all(stackable(m) for m in models):
        histories = fit_ensemble(models, held.x_train, held.y_train, seeds=[s for _, s in runs],
                                 lr=[lr for lr, _ in runs], **kwargs)
    else:
        histories = [fit(m, held.x_train, held.y_train, seed=s, lr=lr, **kwargs)
                     for m, (lr, s) in zip(models, runs, strict=True)]
    curves = {lr: [sum(h.test_metric[e] for h in histories[i * len(seeds):(i + 1) * len(seeds)]) / len(seeds)
                   for e in range(epochs)] for i, lr in enumerate(lrs)}
    sign = -1.0 if data.num_classes is None else 1.0  # accuracy up, squared error down
    lr, epoch = max(((lr, e) for lr in lrs for e in range(epochs)),
                    key=lambda c: (sign * curves[c[0]][c[1]], -c[0], -c[1]))
    return Choice(lr, epoch + 1, curves[lr][epoch], curves)
