"""One short training loop for ERM, input mixup and manifold mixup.

The mixing follows the official manifold-mixup code: per mini-batch, one ``lam`` drawn
from Beta(alpha, alpha), one random permutation as the pairing and, for manifold mixup,
one layer drawn uniformly from the model's eligible set (which contains 0, the input).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_positive, check_positive_int, check_same_batch, check_tensor
from .data import batches
from .manifold import StagedNet
from .mixing import mix, mixed_cross_entropy, mixed_squared_loss, random_pairing, sample_lambda

METHODS = ("erm", "input", "manifold")

# A custom loss: ``loss_fn(model, x_batch, y_batch, generator) -> scalar tensor``.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` recorded, one entry per evaluated epoch.

    For classification ``train_metric``/``test_metric`` are accuracies; for regression
    they are mean squared errors.
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(empty)"
        last = f"loss {self.loss[-1]:.4f}, train {self.train_metric[-1]:.4f}"
        if self.test_metric:
            last += f", test {self.test_metric[-1]:.4f}"
        return f"History({len(self.epoch)} evaluations; last: {last})"


def progress_enabled() -> bool:
    """Whether progress bars are drawn: not when ``MIXLIB_PROGRESS=0`` or ``CI`` is set."""
    if os.environ.get("MIXLIB_PROGRESS", "") == "0":
        return False
    return not os.environ.get("CI")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy for integer labels, mean squared error for float targets."""
    was_training = model.training
    model.eval()
    out = model(x)
    model.train(was_training)
    if y.is_floating_point():
        return float(((out.reshape(y.shape) - y) ** 2).mean())
    return float((out.argmax(dim=1) == y).float().mean())


def mixed_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str,
    alpha: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The training loss of one mini-batch for ``method`` in ``("erm", "input", "manifold")``.

    Integer ``y`` means classification (cross-entropy, mixed as
    ``lam * CE(y) + (1 - lam) * CE(y[perm])``); float ``y`` means regression (the squared
    loss ``1/2 (lam y + (1 - lam) y[perm] - prediction)^2``, averaged over the batch).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    classification = not y.is_floating_point()
    if method == "erm":
        out = model(x)
        if classification:
            return nn.functional.cross_entropy(out, y)
        return 0.5 * ((out.reshape(y.shape) - y) ** 2).mean()
    lam = sample_lambda(alpha, generator=generator)
    perm = random_pairing(x.shape[0], generator=generator)
    if method == "manifold":
        if not isinstance(model, StagedNet):
            raise TypeError(
                f"method='manifold' needs a mixlib StagedNet (see mixlib.mlp), got {type(model).__name__}; "
                "for other models use mixlib.mix_at with a custom loss_fn"
            )
        out = model.forward_mixed(x, model.sample_layer(generator), lam, perm)
    else:
        out = model(mix(x, lam, perm))
    if classification:
        return mixed_cross_entropy(out, y, y[perm], lam)
    return mixed_squared_loss(out.reshape(y.shape), y, y[perm], lam)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "erm",
    alpha: float = 1.0,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    eval_every: int = 1,
    progress: bool | None = None,
) -> History:
    """Train ``model`` in place with Adam and return its :class:`History`.

    Args:
        model: any ``nn.Module``; ``method="manifold"`` needs a :class:`~mixlib.manifold.StagedNet`.
        x: training inputs (float).
        y: int64 class labels (classification) or float targets of shape ``(n,)`` (regression).
        method: ``"erm"``, ``"input"`` (input mixup) or ``"manifold"`` (manifold mixup).
        alpha: the Beta(alpha, alpha) parameter of the mixing weight; ignored for ERM.
        epochs: passes over the training set.
        batch_size: examples per mini-batch.
        lr: Adam's learning rate.
        weight_decay: Adam's (L2) weight decay.
        seed: seeds the shuffling, the mixing weights, the pairings and the layer choice.
            The model's initial weights are the caller's business (seed before building it).
        x_test: optional held-out inputs, evaluated every ``eval_every`` epochs.
        y_test: their targets.
        loss_fn: replaces the built-in loss: ``loss_fn(model, x_batch, y_batch, generator)``
            returns the scalar to minimise. Used to ablate terms of the loss.
        eval_every: evaluate and record every this many epochs (and after the last).
        progress: draw a progress bar; ``None`` decides by :func:`progress_enabled`.

    Returns:
        The recorded loss and metrics.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor("x", x, min_dim=1)
    check_tensor("y", y, floating=False, min_dim=1)
    check_same_batch(x=x, y=y)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "erm":
        check_positive("alpha", alpha)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    eval_every = check_positive_int("eval_every", eval_every)
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    show = progress_enabled() if progress is None else progress
    bar = tqdm(range(1, epochs + 1), desc=method, disable=not show, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches(x, y, batch_size, generator):
            if loss_fn is None:
                loss = mixed_loss(model, xb, yb, method=method, alpha=alpha, generator=generator)
            else:
                loss = loss_fn(model, xb, yb, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * xb.shape[0]
            count += xb.shape[0]
        if epoch % eval_every == 0 or epoch == epochs:
            history.epoch.append(epoch)
            history.loss.append(total / count)
            history.train_metric.append(evaluate(model, x, y))
            if x_test is not None:
                history.test_metric.append(evaluate(model, x_test, y_test))
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    bar.close()
    model.eval()
    return history
