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
from .ensemble import StackedMLP, fit_ensemble, stackable
from .metrics import nll, temperature_for_nll
from .recipe import Recipe
from .seeding import seed_everything
from .train import ExtraLoss, fit

__all__ = ["Choice", "Scored", "holdout_split", "tune", "tune_and_score", "crossfit_nll"]


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
    keep, out = _holdout_rows(len(data.x_train), fraction, seed, data.x_train.device)
    return Split(data.x_train[keep], data.y_train[keep], data.x_train[out], data.y_train[out], data.num_classes)


def _holdout_rows(n: int, fraction: object, seed: object, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows :func:`holdout_split` fits on and holds out."""
    fraction = check_fraction("fraction", fraction)
    held = int(round(fraction * n))
    if not 1 <= held < n:
        raise ValueError(f"fraction={fraction} of {n} training examples leaves no example on one side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    return order[held:].to(device), order[:held].to(device)


def _sweep(caller: str, build: object, arm: object, seeds: object, lrs: object, epochs: object,
           fit_kwargs: Mapping[str, Any]) -> tuple[list[int], list[float], int, dict, list[tuple[float, int]], list]:
    """Check a learning-rate sweep's arguments; return them with its ``(lr, seed)`` runs and fresh models.

    Run ``(lr, seed)`` starts from ``build()`` after ``seed_everything(seed)``, as in
    :func:`mixlib.experiments.compare_methods`, so seed ``s`` starts alike in every arm and rate.
    """
    if isinstance(build, nn.Module) or not callable(build):
        raise TypeError(f"build must be a function that returns a new model, got {type(build).__name__}")
    seeds = check_seeds(seeds, distinct=True)
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise TypeError(f"lrs must be a non-empty sequence of learning rates, got {lrs!r}")
    lrs = [check_positive("lrs[i]", lr) for lr in lrs]
    epochs = check_positive_int("epochs", epochs)
    spec = {"recipe": arm} if isinstance(arm, Recipe) else dict(arm)
    clash = (set(spec) | set(fit_kwargs)) & {"lr", "epochs", "seed", "seeds", "x_test", "y_test", "eval_every"}
    if clash:
        raise ValueError(f"{caller} sets {sorted(clash)} itself; pass the sweep as lrs= and the longest run as epochs=")
    runs = [(lr, seed) for lr in lrs for seed in seeds]
    models = []
    for _, seed in runs:
        seed_everything(seed)
        models.append(build())
    return seeds, lrs, epochs, spec, runs, models


def _best(curves: dict[float, list[float]], higher_is_better: bool) -> tuple[float, int]:
    """The ``(lr, epoch)`` (epoch counted from 1) with the best mean; ties to the smaller lr, earlier epoch."""
    sign = 1.0 if higher_is_better else -1.0
    lr, e = max(((lr, e) for lr, curve in curves.items() for e in range(len(curve))),
                key=lambda c: (sign * curves[c[0]][c[1]], -c[0], -c[1]))
    return lr, e + 1


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
    seeds, lrs, epochs, spec, runs, models = _sweep("tune", build, arm, seeds, lrs, epochs, fit_kwargs)
    held = holdout_split(data, fraction, split_seed)
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
    lr, epoch = _best(curves, higher_is_better=data.num_classes is not None)  # accuracy up, squared error down
    return Choice(lr, epoch, curves[lr][epoch - 1], curves)


@dataclass(frozen=True)
class Scored:
    """One arm on one data draw, stopped where its held-out training data said, measured per seed.

    Attributes:
        lr: the learning rate chosen on the held-out part of the training set.
        epoch: the epoch chosen there (the same for every seed: the best *mean* held-out accuracy).
        heldout: that mean held-out accuracy.
        accuracy: test accuracy of each seed's model at ``(lr, epoch)``, in the order of ``seeds``.
        nll: its test NLL after temperature scaling, the temperature fitted on the other half of the
            test set (:func:`crossfit_nll`), so no row's NLL uses a temperature fitted on itself.
        memorised: the fraction of the *wrong* training labels (rows of the fitting part whose label
            differs from ``clean_labels``) that the model predicts; ``None`` without clean labels.
        curves: ``{lr: [mean held-out accuracy after epoch 1, 2, ...]}``.
        trajectory: at the chosen ``lr``, each seed's test accuracy after epoch 1, 2, ... (to draw
            the whole road; the measurement is at ``epoch``).
    """

    lr: float
    epoch: int
    heldout: float
    accuracy: list[float]
    nll: list[float]
    memorised: list[float] | None
    curves: dict[float, list[float]]
    trajectory: list[list[float]]


def tune_and_score(
    build: Callable[[], nn.Module],
    data: Split,
    arm: Mapping[str, Any] | Recipe,
    *,
    seeds: Iterable[int],
    lrs: Sequence[float] = (3e-4, 1e-3, 3e-3),
    epochs: int = 60,
    clean_labels: torch.Tensor | None = None,
    fraction: float = 0.2,
    split_seed: int = 2026,
    extra_loss: ExtraLoss | None = None,
    **fit_kwargs: Any,
) -> Scored:
    """Train ``arm`` on a fair footing and measure it where a practitioner would have stopped it.

    Every ``(lr, seed)`` pair trains (as one ensemble when it can) on the fitting part of
    :func:`holdout_split` for ``epochs`` epochs. After each epoch the held-out accuracy (on the
    training labels as they are, noise included) is recorded, and so are the test logits and the
    share of wrong training labels fitted. The ``(lr, epoch)`` with the best mean held-out accuracy
    over the seeds is chosen (as :func:`tune` chooses) and each seed's model is measured *as it was
    at that epoch*: a per-seed checkpoint, not a retraining on the whole training set, so the
    held-out rows stay unseen by the model that is measured. The test set is looked at only after
    the choice, and only to measure.

    Args:
        build: makes a fresh network; :func:`~mixlib.manifold.mlp` networks train as one ensemble,
            any other model one ``(lr, seed)`` run at a time.
        data: a classification split; its training labels may be noisy, its test labels not.
        arm: the training recipe, a :class:`~mixlib.recipe.Recipe` or its fields.
        seeds: the paired seeds: seed ``s`` starts from ``build()`` after ``seed_everything(s)`` and
            sees the same mini-batches in every arm.
        lrs: Adam learning rates to choose from.
        epochs: the longest training considered.
        clean_labels: the training labels before corruption, shape like ``data.y_train``, to measure
            memorisation; ``None`` skips it.
        fraction: the share of the training set held out to choose with.
        split_seed: the seed of the held-out rows (and of the two halves of the test set).
        extra_loss: a term added to the loss (see :func:`~mixlib.ensemble.fit_ensemble`).
        **fit_kwargs: other arguments of :func:`~mixlib.train.fit` (``batch_size``, ...).
    """
    if not isinstance(data, Split) or data.num_classes is None:
        raise TypeError("data must be a mixlib Split of class labels (tune_and_score measures accuracy)")
    if clean_labels is not None and (not isinstance(clean_labels, torch.Tensor)
                                     or clean_labels.shape != data.y_train.shape):
        raise ValueError(f"clean_labels must be a tensor shaped like data.y_train {tuple(data.y_train.shape)}")
    seeds, lrs, epochs, spec, runs, models = _sweep("tune_and_score", build, arm, seeds, lrs, epochs, fit_kwargs)
    keep, out = _holdout_rows(len(data.x_train), fraction, split_seed, data.x_train.device)
    x_fit, y_fit = data.x_train[keep], data.y_train[keep]
    wrong = None if clean_labels is None else (y_fit != clean_labels.to(y_fit.device)[keep])
    test_logits: list[torch.Tensor] = []
    memorised: list[torch.Tensor] = []

    def monitor(epoch: int, net: nn.Module) -> None:  # one stack of K members, or one model (K = 1)
        per_member = isinstance(net, StackedMLP)
        test_logits.append((net(data.x_test) if per_member else net(data.x_test)[None]).cpu())
        if wrong is not None:
            fitted = (net(x_fit[wrong]) if per_member else net(x_fit[wrong])[None]).argmax(-1) == y_fit[wrong]
            memorised.append(fitted.double().mean(-1).cpu())

    fit_kwargs.setdefault("progress", False)
    common = dict(fit_kwargs, **spec, extra_loss=extra_loss, monitor=monitor, epochs=epochs,
                  x_test=data.x_train[out], y_test=data.y_train[out], eval_every=1)
    if all(stackable(m) for m in models):
        histories = fit_ensemble(models, x_fit, y_fit, seeds=[s for _, s in runs], lr=[lr for lr, _ in runs],
                                 **common)
    else:  # any other network: one run at a time, its records laid out as the ensemble's
        histories = [fit(m, x_fit, y_fit, seed=s, lr=lr, **common) for m, (lr, s) in zip(models, runs, strict=True)]
        test_logits[:] = [torch.cat(test_logits[k::epochs]) for k in range(epochs)]
        memorised[:] = [torch.cat(memorised[k::epochs]) for k in range(epochs)] if wrong is not None else []
    n = len(seeds)
    curves = {lr: [sum(h.test_metric[e] for h in histories[i * n:(i + 1) * n]) / n for e in range(epochs)]
              for i, lr in enumerate(lrs)}
    lr, epoch = _best(curves, higher_is_better=True)
    members = range(lrs.index(lr) * n, (lrs.index(lr) + 1) * n)
    chosen = test_logits[epoch - 1]
    y_test = data.y_test.cpu()
    return Scored(
        lr, epoch, curves[lr][epoch - 1],
        accuracy=[float((chosen[k].argmax(-1) == y_test).double().mean()) for k in members],
        nll=[crossfit_nll(chosen[k], y_test, split_seed) for k in members],
        memorised=None if wrong is None else [float(memorised[epoch - 1][k]) for k in members],
        curves=curves,
        trajectory=[[float((logits[k].argmax(-1) == y_test).double().mean()) for logits in test_logits]
                    for k in members],
    )


def crossfit_nll(logits: torch.Tensor, labels: torch.Tensor, seed: int = 2026) -> float:
    """Test NLL after temperature scaling, the temperature fitted on the *other* half of the rows.

    The rows are split in two halves by a permutation from ``seed``; each half is scored at the
    temperature (:func:`~mixlib.metrics.temperature_for_nll`) that is best on the other half, and the
    result is the mean over all rows. So every model is compared at a temperature of its own, and
    no row's NLL uses a temperature fitted on that row.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    a, b = order[: len(order) // 2], order[len(order) // 2 :]
    total = 0.0
    for score_rows, fit_rows in ((a, b), (b, a)):
        t = temperature_for_nll(logits[fit_rows], labels[fit_rows])
        total += nll(logits[score_rows] / t, labels[score_rows]) * len(score_rows)
    return total / len(labels)
