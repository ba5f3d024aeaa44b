"""One short training loop: :func:`fit` trains a model in place with Adam under a :class:`~mixlib.recipe.Recipe`.

What is minimised in each mini-batch (ERM, input mixup, manifold mixup and their ablations) is
:func:`mixlib.recipe.recipe_loss`; this module holds the loop around it: the checks at the door
(:func:`prepare_run`), the seeded mini-batch order, Adam and the :class:`History`. Many seeds at
once train through :func:`mixlib.ensemble.fit_ensemble`, which runs this same loop on a stack.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from numbers import Real

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_data, check_device, check_generator, check_positive, check_positive_int, check_seed
from .metrics import score
from .recipe import METHODS, RECIPE_FIELDS, Recipe, draw, make_recipe, recipe_loss
from .seeding import model_device

# A custom loss that replaces the recipe's: ``loss_fn(model, x_batch, y_batch, generator) -> scalar``.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
# A term added to the recipe's loss: ``extra_loss(model, x, y, index) -> one loss per member``, with
# a leading member dimension on x ``(K, B, ...)``, y ``(K, B)`` and the rows' indices ``(K, B)``
# into the training set (K = 1 in fit). If it is an nn.Module, its parameters are trained too.
ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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

    def record(self, epoch: int, loss: float, train: float, test: float | None) -> None:
        """Append one evaluation."""
        self.epoch.append(epoch)
        self.loss.append(loss)
        self.train_metric.append(train)
        if test is not None:
            self.test_metric.append(test)

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
    """Accuracy for integer labels of shape ``(n,)``, mean squared error for float targets."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x, y, _ = check_data(model, x, y, model_device(model))
    return _evaluate(model, x, y)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    out = model(x)
    model.train(was_training)
    return float(score(out, y))


def mixed_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str, alpha: float,
    generator: torch.Generator | None = None, **settings: object,
) -> torch.Tensor:
    """The training loss of one mini-batch under the recipe ``method``, ``alpha`` and ``settings``.

    Integer ``y`` means classification (by default cross-entropy against the mixed one-hot
    target, which equals ``lam * CE(y) + (1 - lam) * CE(y[perm])``); float ``y`` means
    regression (the squared loss ``1/2 (lam y + (1 - lam) y[perm] - prediction)^2``, averaged
    over the batch). ``settings`` are the other fields of :class:`~mixlib.recipe.Recipe`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x, y, num_classes = check_data(model, x, y, model_device(model))
    check_generator(generator)
    recipe = make_recipe(model, method=method, alpha=alpha, num_classes=num_classes, **settings)
    return recipe_loss(model, x, y, recipe, draw(recipe, x.shape[0], generator))


def generators_for(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two CPU generators for one training run: the mini-batch order, and the mixing draws.

    Separate streams keep runs with the same seed paired: ERM, which draws nothing for mixing,
    and any mixing method see the same sequence of mini-batches in every epoch.
    """
    shuffle = torch.Generator().manual_seed(seed)
    mixing = torch.Generator().manual_seed((seed + 0x9E3779B97F4A7C15) % 2**64)  # a distinct, fixed stream
    return shuffle, mixing


# ----------------------------------------------------------------------------------------------
# Checks at the door: fit, fit_ensemble, evaluate and mixed_loss call these once per call.


@dataclass
class Run:
    """Everything :func:`fit` and :func:`mixlib.ensemble.fit_ensemble` check before training."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    recipe: Recipe
    device: torch.device
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    eval_every: int
    show: bool


def check_fit_arguments(names: Iterable[str], taken: Iterable[str] = ()) -> None:
    """Raise a ``TypeError`` for each of ``names`` that is neither in ``taken`` nor a recipe setting.

    The message names the public arguments (those of :func:`fit` and the recipe's settings) and
    suggests the nearest one, for a keyword passed on through ``**kwargs`` (``epoch`` for ``epochs``).
    """
    unknown = sorted(set(names) - set(taken) - set(RECIPE_FIELDS))
    if not unknown:
        return
    known = ["recipe", *FIT_KEYWORDS, *RECIPE_FIELDS]
    listed = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), known, n=1)
        listed.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    plural = "s" if len(unknown) > 1 else ""
    raise TypeError(
        f"unknown argument{plural} {', '.join(listed)}; the training arguments are {', '.join(FIT_KEYWORDS)} "
        f"and the recipe's settings {', '.join(RECIPE_FIELDS)} (or recipe=)"
    )


def prepare_run(
    model: nn.Module, x: object, y: object, recipe: Recipe | None = None, *, epochs: int = 100,
    batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 0.0, x_test: object = None,
    y_test: object = None, eval_every: int = 1, progress: bool | None = None, device: object = None,
    **settings: object,
) -> Run:
    """Check every argument of :func:`fit` (but the seed and the custom losses) and move the data."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_fit_arguments(settings)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_positive("lr", lr)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, Real) or not 0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    eval_every = check_positive_int("eval_every", eval_every)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    if settings.get("method", "erm") not in METHODS:  # before the data is looked at
        raise ValueError(f"method must be one of {METHODS}, got {settings['method']!r}")
    device = check_device(device, model_device(model))
    model.to(device)
    x, y, num_classes = check_data(model, x, y, device)
    recipe = make_recipe(model, recipe, num_classes=num_classes, **settings)
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if x_test is not None:
        x_test, y_test, test_classes = check_data(model, x_test, y_test, device, names=("x_test", "y_test"))
        if (test_classes is None) != (num_classes is None):
            raise ValueError("y_test must be of the same kind as y (class labels or float targets)")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"x_test must have rows shaped like x's {tuple(x.shape[1:])}, got {tuple(x_test.shape[1:])}"
            )
    show = progress_enabled() if progress is None else progress
    return Run(x, y, x_test, y_test, recipe, device, epochs, batch_size, lr, float(weight_decay), eval_every, show)


def check_losses(loss_fn: object, extra_loss: object) -> list[torch.Tensor]:
    """Check the custom losses of :func:`fit`; return the parameters an ``extra_loss`` module trains."""
    for name, fn in (("loss_fn", loss_fn), ("extra_loss", extra_loss)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    return list(extra_loss.parameters()) if isinstance(extra_loss, nn.Module) else []


def adam_with_zero_grads(params: list[torch.Tensor], run: Run, fused: bool = False) -> torch.optim.Adam:
    """Adam over ``params``, whose gradients start as zeros rather than ``None``.

    Adam skips a parameter whose gradient is ``None`` and keeps a step count per parameter, so
    a block that sometimes gets no gradient (``block_grad``) would see a different bias correction
    from the rest. With zero gradients every parameter takes every step: momentum carries on
    through batches that do not reach it, the same in a single model and in an ensemble.
    """
    for p in params:
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    # foreach: one pass per operation over all tensors (the same arithmetic as one tensor at a time).
    # fused: one pass over each tensor for the whole update; the same formula, rounded differently
    # (about one float32 ulp per step), and over twice as fast on large stacked tensors.
    if fused:
        try:
            return torch.optim.Adam(params, lr=run.lr, weight_decay=run.weight_decay, fused=True)
        except RuntimeError:  # a device or dtype without a fused Adam: the same update, unfused
            pass
    return torch.optim.Adam(params, lr=run.lr, weight_decay=run.weight_decay, foreach=True)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe | None = None,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    extra_loss: ExtraLoss | None = None,
    eval_every: int = 1,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    monitor: Callable[[int, nn.Module], None] | None = None,
    **settings: object,
) -> History:
    """Train ``model`` in place with Adam and return its :class:`History`.

    Args:
        model: any ``nn.Module``; ``method="manifold"`` needs a :class:`~mixlib.manifold.StagedNet`.
        x: training inputs (float, the model's dtype).
        y: int64 class labels of shape ``(n,)`` (classification) or float targets of shape
            ``(n,)`` (regression).
        recipe: the training loss, a :class:`~mixlib.recipe.Recipe`; or pass its fields as keywords
            (``method``, ``alpha``, ``loss``, ``label_smoothing``, ``layers``, ``block_grad``,
            ``terms``, ``interpolate``), for example ``fit(model, x, y, method="manifold", alpha=2.0)``.
        epochs: passes over the training set.
        batch_size: examples per mini-batch.
        lr: Adam's learning rate.
        weight_decay: Adam's (L2) weight decay.
        seed: seeds the shuffling and, from a second stream, the mixing weights, pairings and
            layer choices (so every method sees the same mini-batches for a given seed; see
            :func:`generators_for`). The model's initial weights are the caller's business (seed
            before building it).
        x_test: optional held-out inputs, evaluated every ``eval_every`` epochs.
        y_test: their targets.
        loss_fn: replaces the recipe's loss: ``loss_fn(model, x_batch, y_batch, generator)``
            returns the scalar to minimise.
        extra_loss: adds a term to the recipe's loss (an ``ExtraLoss``, see the module); the same function
            serves :func:`mixlib.ensemble.fit_ensemble`.
        eval_every: evaluate and record every this many epochs (and after the last).
        progress: draw a progress bar; ``None`` decides by :func:`progress_enabled`.
        device: where to train; default the model's device. The model and the data are moved
            there; pairings and mixing weights are drawn on the CPU and moved as needed.
        monitor: ``monitor(epoch, model)`` is called after each evaluation, in eval mode with
            gradients off (to record more than the history holds).
        **settings: the recipe's fields, when ``recipe`` is not given.

    Returns:
        The recorded loss and metrics.
    """
    seed = check_seed("seed", seed)
    extra_params = check_losses(loss_fn, extra_loss)
    if monitor is not None and not callable(monitor):
        raise TypeError(f"monitor must be a function monitor(epoch, model), got {type(monitor).__name__}")
    run = prepare_run(model, x, y, recipe, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      x_test=x_test, y_test=y_test, eval_every=eval_every, progress=progress, device=device,
                      **settings)
    shuffle, mixing = generators_for(seed)
    optimizer = adam_with_zero_grads(list(model.parameters()) + extra_params, run)
    history = History()
    n = run.x.shape[0]
    bar = tqdm(range(1, run.epochs + 1), desc=run.recipe.method, disable=not run.show, leave=False)
    for epoch in bar:
        model.train()
        total = 0.0
        order = torch.randperm(n, generator=shuffle).to(run.device)
        for start in range(0, n, run.batch_size):
            index = order[start : start + run.batch_size]
            xb, yb = run.x[index], run.y[index]
            if loss_fn is None:
                loss = recipe_loss(model, xb, yb, run.recipe, draw(run.recipe, len(index), mixing))
            else:
                loss = loss_fn(model, xb, yb, mixing)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
            if extra_loss is not None:  # as for one member of an ensemble: a leading member dim of 1
                loss = loss + extra_loss(model, xb[None], yb[None], index[None]).reshape(())
            optimizer.zero_grad(set_to_none=False)  # see adam_with_zero_grads
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        if epoch % run.eval_every == 0 or epoch == run.epochs:
            test = _evaluate(model, run.x_test, run.y_test) if run.x_test is not None else None
            history.record(epoch, total / n, _evaluate(model, run.x, run.y), test)
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
            if monitor is not None:
                model.eval()
                with torch.no_grad():
                    monitor(epoch, model)
    bar.close()
    model.eval()
    return history


#: The keyword-only arguments of :func:`fit`: what the ``**kwargs`` of its callers may pass on,
#: with the recipe's settings.
FIT_KEYWORDS = tuple(
    n for n, p in inspect.signature(fit).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
)
