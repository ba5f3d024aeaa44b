"""One short training loop for ERM, input mixup and manifold mixup.

The mixing follows the official manifold-mixup code: per mini-batch, one ``lam`` drawn
from Beta(alpha, alpha), one random permutation as the pairing and, for manifold mixup,
one layer drawn uniformly from the eligible set (which contains 0, the input). The targets
are the one-hot labels mixed with the same ``lam`` and pairing.

Three training losses (``loss=``), all linear in the target:

- ``"ce"``: cross-entropy against the mixed one-hot target, which equals the mixup code's
  ``lam * CE(y) + (1 - lam) * CE(y[perm])``;
- ``"bce"``: the official manifold-mixup code's ``BCELoss(softmax(logits), target)``
  (:func:`mixlib.mixing.bce_on_softmax`);
- ``"mse"``: the squared loss ``1/2 ||target - output||^2`` on one-hot targets, the loss of the
  book's gradient analysis (and the loss for regression targets).

The ablations of chapter 06 are options of the same loop: ``layers`` restricts the mixing layer,
``block_grad`` stops the gradient into the layers below the mixing layer, and ``terms`` keeps
only some of the four terms of the squared loss at the last layer.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_generator, check_positive, check_positive_int, check_tensor
from ._checks import check_seed as _check_seed
from .data import batches
from .manifold import StagedNet
from .mixing import mix, random_pairing, sample_lambda
from .seeding import model_device

METHODS = ("erm", "input", "manifold")
LOSSES = ("ce", "bce", "mse")
#: Which terms of the last-layer squared loss to keep (see :func:`terms_loss`).
TERMS = ("all", "ordinary", "cross", "mean", "noise")

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
    """Accuracy for integer labels of shape ``(n,)``, mean squared error for float targets."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x, y, _ = check_data(model, x, y, model_device(model))
    was_training = model.training
    model.eval()
    out = model(x.to(model_device(model)))
    model.train(was_training)
    y = y.to(out.device)
    if y.is_floating_point():
        return float(((out.reshape(y.shape) - y) ** 2).mean())
    if y.dim() != 1:
        raise ValueError(f"y must hold one class label per example, shape ({y.shape[0]},), got {tuple(y.shape)}")
    if out.dim() != 2:
        raise ValueError(f"the model must return logits of shape (n, classes) for x, got {tuple(out.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
        raise ValueError(f"y must hold class labels in [0, {out.shape[1] - 1}], got {int(y.min())} to {int(y.max())}")
    return float((out.argmax(dim=1) == y).float().mean())


# ----------------------------------------------------------------------------------------------
# The recipe: every setting of one training run, checked once.


@dataclass(frozen=True)
class Recipe:
    """The settings that define a training loss, checked once by :func:`make_recipe`.

    Attributes:
        method: ``"erm"``, ``"input"`` or ``"manifold"``.
        alpha: Beta(alpha, alpha) parameter of the mixing weight.
        loss: ``"ce"``, ``"bce"`` or ``"mse"``.
        label_smoothing: ``eps`` in ``(1 - eps) one_hot + eps / C``.
        layers: for manifold mixup, the layers the mixing layer is drawn from.
        block_grad: stop the gradient into the layers below the mixing layer.
        terms: which terms of the last-layer squared loss to keep (``"all"`` is plain mixing).
        num_classes: the number of classes, or ``None`` for regression.
    """

    method: str = "erm"
    alpha: float = 1.0
    loss: str = "ce"
    label_smoothing: float = 0.0
    layers: tuple[int, ...] = (0,)
    block_grad: bool = False
    terms: str = "all"
    num_classes: int | None = None


def make_recipe(
    model: nn.Module,
    *,
    method: str = "erm",
    alpha: float = 1.0,
    loss: str | None = None,
    label_smoothing: float = 0.0,
    layers: object = None,
    block_grad: bool = False,
    terms: str = "all",
    num_classes: int | None = None,
) -> Recipe:
    """Check the loss settings against ``model`` and return them as a :class:`Recipe`.

    ``num_classes=None`` means regression (float targets). See :func:`fit` for the arguments.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    regression = num_classes is None
    if loss is None:
        loss = "mse" if regression else "ce"
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if regression and loss != "mse":
        raise ValueError(f"loss={loss!r} needs integer class labels; float targets y mean regression (loss='mse')")
    alpha = check_positive("alpha", alpha) if method != "erm" else 1.0
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, Real) or not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    if regression and label_smoothing:
        raise ValueError("label_smoothing needs class labels; it has no meaning for regression targets")
    if not isinstance(block_grad, bool):
        raise TypeError(f"block_grad must be True or False, got {type(block_grad).__name__}")
    if terms not in TERMS:
        raise ValueError(f"terms must be one of {TERMS}, got {terms!r}")
    if method == "manifold":
        if not isinstance(model, StagedNet):
            raise TypeError(
                f"model must be a mixlib StagedNet for method='manifold' (see mixlib.mlp), got "
                f"{type(model).__name__}; "
                "for other models use mixlib.mix_at with a custom loss_fn"
            )
        chosen = model.eligible_layers if layers is None else layers
        if isinstance(chosen, Integral) and not isinstance(chosen, bool):
            chosen = (chosen,)
        try:
            chosen = tuple(sorted(set(chosen)))
        except TypeError:
            raise TypeError(f"layers must be a collection of layer indices, got {layers!r}") from None
        if not chosen:
            raise ValueError("layers must contain at least one layer")
        every = range(len(model.blocks) + 1)
        for k in chosen:
            if isinstance(k, bool) or not isinstance(k, Integral) or k not in every:
                raise ValueError(f"layers must hold layer indices in 0..{len(model.blocks)}, got {k!r}")
        chosen = tuple(int(k) for k in chosen)
    else:
        if layers is not None:
            mixes = "nothing" if method == "erm" else "the input"
            raise ValueError(f"layers is for method='manifold'; method={method!r} mixes {mixes}")
        if block_grad:
            raise ValueError("block_grad is for method='manifold' (it stops the gradient below the mixing layer)")
        chosen = (0,)
    if terms != "all":
        last = len(model.blocks) if isinstance(model, StagedNet) else None
        if method != "manifold" or chosen != (last,) or loss != "mse" or not isinstance(model.head, nn.Linear):
            raise ValueError(
                f"terms={terms!r} splits the squared loss at the last layer: it needs method='manifold', "
                f"loss='mse', layers=({last},) (the features the head sees) and an nn.Linear head"
            )
    return Recipe(method, alpha, loss, float(label_smoothing), chosen, block_grad, terms, num_classes)


@dataclass(frozen=True)
class Draw:
    """The random choices for one mini-batch: mixing weight, pairing, layer and noise."""

    lam: float = 1.0
    perm: torch.Tensor | None = None
    layer: int = 0
    noise: torch.Tensor | None = None


def draw(recipe: Recipe, batch: int, generator: torch.Generator | None) -> Draw:
    """Draw, in a fixed order, what one mini-batch of ``recipe`` needs from ``generator``.

    :func:`fit` and :func:`mixlib.ensemble.fit_ensemble` both call this, so that a seed gives the
    same choices in both.
    """
    if recipe.method == "erm":
        return Draw()
    lam = sample_lambda(recipe.alpha, generator=generator)
    perm = random_pairing(batch, generator=generator)
    layer = 0
    if recipe.method == "manifold":
        layer = recipe.layers[int(torch.randint(len(recipe.layers), (1,), generator=generator))]
    noise = torch.randn(batch, batch, generator=generator) if recipe.terms == "noise" else None
    return Draw(lam, perm, layer, noise)


def soft_targets(y: torch.Tensor, recipe: Recipe, dtype: torch.dtype) -> torch.Tensor:
    """One-hot rows (smoothed if asked) for class labels; float targets unchanged."""
    if recipe.num_classes is None:
        return y.to(dtype).reshape(-1, 1)  # one output per example
    target = F.one_hot(y, recipe.num_classes).to(dtype)
    if recipe.label_smoothing:
        target = target * (1 - recipe.label_smoothing) + recipe.label_smoothing / recipe.num_classes
    return target


def criterion(out: torch.Tensor, target: torch.Tensor, loss: str, class_dim: int = -1) -> torch.Tensor:
    """The mean over the batch of ``loss`` between ``out`` and ``target``, both ``(..., B, C)``.

    Leading dimensions (one per ensemble member) are kept: the result has shape ``(...)``.
    ``class_dim=-2`` takes class-major tensors ``(..., C, B)`` instead (the ensemble uses them:
    a softmax over a short last dimension is slow on the CPU).
    """
    if loss == "ce":
        per_example = -(target * F.log_softmax(out, dim=class_dim)).sum(dim=class_dim)
    elif loss == "bce":  # nn.BCELoss on softmax probabilities: mean over the classes too
        probabilities = torch.softmax(out, dim=class_dim)
        per_example = F.binary_cross_entropy(probabilities, target, reduction="none").mean(dim=class_dim)
    else:
        per_example = 0.5 * (target - out).pow(2).sum(dim=class_dim)
    return per_example.mean(dim=-1)


def terms_loss(
    out: torch.Tensor, target: torch.Tensor, lam: torch.Tensor | float, perm_rows: Callable, terms: str,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    r"""The last-layer squared manifold-mixup loss, split into its terms (mean over the batch).

    With an affine head, mixing the features mixes the outputs, so with residuals
    :math:`e_i = t_i - o_i` on the *unmixed* outputs the mixed loss is
    :math:`\tfrac12\|\lambda e_i + (1-\lambda) e_{\pi(i)}\|^2`, which expands into

    - ``"ordinary"``: :math:`\tfrac12\lambda^2\|e_i\|^2 + \tfrac12(1-\lambda)^2\|e_{\pi(i)}\|^2`;
    - ``"cross"``: :math:`\lambda(1-\lambda)\, e_i\cdot e_{\pi(i)}`;
    - ``"all"``: their sum, equal to plain manifold mixup at the last layer;
    - ``"mean"``: the ordinary terms plus the cross terms' average over pairings,
      :math:`\lambda(1-\lambda)\|\bar e\|^2` (a penalty on the batch's mean residual);
    - ``"noise"``: ``"mean"`` plus :math:`\lambda(1-\lambda)\, e_i\cdot\xi_i` with a detached Gaussian
      :math:`\xi_i` whose covariance, twice the batch covariance of the residuals, matches that of
      the partner residuals :math:`e_{\pi(i)} + e_{\pi^{-1}(i)}` the cross terms put in front of
      example :math:`i`'s gradient, and which, like their fluctuation, sums to zero over the batch.

    Args:
        out: unmixed outputs ``(..., B, C)``.
        target: their targets, same shape.
        lam: mixing weight, a number or a tensor shaped ``(..., 1)`` (one per ensemble member).
        perm_rows: ``perm_rows(t)`` returns ``t`` with its rows paired (``t[perm]`` per member).
        terms: one of :data:`TERMS`.
        noise: for ``"noise"``, standard normal draws of shape ``(..., B, B)``.
    """
    e = target - out
    batch = e.shape[-2]
    ordinary = 0.5 * (lam**2 * e.pow(2).sum(-1) + (1 - lam) ** 2 * perm_rows(e).pow(2).sum(-1)).mean(-1)
    if terms == "ordinary":
        return ordinary
    if terms in ("cross", "all"):
        cross = (lam * (1 - lam) * (e * perm_rows(e)).sum(-1)).mean(-1)
        return cross if terms == "cross" else ordinary + cross
    lam0 = lam if isinstance(lam, float) else lam.squeeze(-1)
    mean_part = ordinary + lam0 * (1 - lam0) * e.mean(-2).pow(2).sum(-1)
    if terms == "mean":
        return mean_part
    if batch == 1:  # one example has no partner but itself: the cross term is its mean
        return mean_part
    centred = (e - e.mean(-2, keepdim=True)).detach()
    xi = math.sqrt(2.0 / batch) * noise.to(e.dtype) @ centred  # Cov(xi_i) = 2 (centred^T centred) / B
    # Like the real fluctuations, which sum to zero over the batch (so none reaches the head's bias):
    # centre over the batch, and rescale to keep each xi_i's covariance.
    xi = (xi - xi.mean(-2, keepdim=True)) * math.sqrt(batch / (batch - 1))
    return mean_part + (lam * (1 - lam) * (e * xi).sum(-1)).mean(-1)


def recipe_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, choice: Draw
) -> torch.Tensor:
    """The training loss of one mini-batch of ``model`` under ``recipe`` and the draws ``choice``."""
    target = soft_targets(y, recipe, x.dtype)
    if recipe.method == "erm":
        out = model(x)
        return criterion(out.reshape(target.shape), target, recipe.loss)
    lam, perm = choice.lam, choice.perm.to(x.device)
    if recipe.terms != "all":
        out = model(x)
        return terms_loss(out, target, lam, lambda t: t[perm], recipe.terms,
                          None if choice.noise is None else choice.noise.to(x.device))
    if recipe.method == "manifold":
        h = model.features(x, choice.layer)
        if recipe.block_grad:
            h = h.detach()  # no gradient reaches the blocks below the mixing layer
        out = model.forward_from(mix(h, lam, perm), choice.layer)
    else:
        out = model(mix(x, lam, perm))
    mixed_target = torch.lerp(target[perm], target, lam)
    return criterion(out.reshape(mixed_target.shape), mixed_target, recipe.loss)


def mixed_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str,
    alpha: float,
    generator: torch.Generator | None = None,
    loss: str | None = None,
    **options: object,
) -> torch.Tensor:
    """The training loss of one mini-batch for ``method`` in ``("erm", "input", "manifold")``.

    Integer ``y`` means classification (by default cross-entropy against the mixed one-hot
    target, which equals ``lam * CE(y) + (1 - lam) * CE(y[perm])``); float ``y`` means
    regression (the squared loss ``1/2 (lam y + (1 - lam) y[perm] - prediction)^2``, averaged
    over the batch). ``options`` are the other loss settings of :func:`fit`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x, y, num_classes = check_data(model, x, y, model_device(model))
    check_generator(generator)
    recipe = make_recipe(model, method=method, alpha=alpha, loss=loss, num_classes=num_classes, **options)
    return recipe_loss(model, x, y, recipe, draw(recipe, x.shape[0], generator))


# ----------------------------------------------------------------------------------------------
# Checks on the data, shared with mixlib.ensemble.


@torch.no_grad()
def _output_width(model: nn.Module, x: torch.Tensor) -> int:
    out = model(x[:1])
    if out.dim() != 2:
        raise ValueError(f"for class labels the model must return logits of shape (n, classes), got {tuple(out.shape)}")
    return out.shape[1]


def generators_for(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two CPU generators for one training run: the mini-batch order, and the mixing draws.

    Separate streams keep runs with the same seed paired: ERM, which draws nothing for mixing,
    and any mixing method see the same sequence of mini-batches in every epoch.
    """
    shuffle = torch.Generator().manual_seed(seed)
    mixing = torch.Generator().manual_seed((seed + 0x9E3779B97F4A7C15) % 2**64)  # a distinct, fixed stream
    return shuffle, mixing


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` if it is an int in ``[0, 2**63)``, else raise (``-1`` would wrap around)."""
    return _check_seed(name, seed)


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
            out = model(x[:1])
    except (RuntimeError, ValueError) as problem:
        why = re.sub(r"^the model cannot be applied to \w+ of shape \([^)]*\): ", "", str(problem))
        raise ValueError(f"the model cannot be applied to {xn} of shape {tuple(x.shape)}: {why}") from None
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
        return x, y, None
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


def _check_device(device: object, model: nn.Module) -> torch.device:
    if device is None:
        return model_device(model)
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


def prepare_run(
    model: nn.Module, x: object, y: object, *, method: str = "erm", alpha: float = 1.0, loss: str | None = None,
    label_smoothing: float = 0.0, layers: object = None, block_grad: bool = False, terms: str = "all",
    epochs: int = 100, batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 0.0,
    x_test: object = None, y_test: object = None, eval_every: int = 1, progress: bool | None = None,
    device: object = None,
) -> Run:
    """Check every argument of :func:`fit` (but the model, seed and loss_fn) and move the data."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_positive("lr", lr)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, Real) or not 0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    eval_every = check_positive_int("eval_every", eval_every)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    device = _check_device(device, model)
    model.to(device)
    x, y, num_classes = check_data(model, x, y, device)
    recipe = make_recipe(model, method=method, alpha=alpha, loss=loss, label_smoothing=label_smoothing,
                         layers=layers, block_grad=block_grad, terms=terms, num_classes=num_classes)
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
    *,
    method: str = "erm",
    alpha: float = 1.0,
    loss: str | None = None,
    label_smoothing: float = 0.0,
    layers: object = None,
    block_grad: bool = False,
    terms: str = "all",
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
    device: torch.device | str | None = None,
) -> History:
    """Train ``model`` in place with Adam and return its :class:`History`.

    Args:
        model: any ``nn.Module``; ``method="manifold"`` needs a :class:`~mixlib.manifold.StagedNet`.
        x: training inputs (float, the model's dtype).
        y: int64 class labels of shape ``(n,)`` (classification) or float targets of shape
            ``(n,)`` (regression).
        method: ``"erm"``, ``"input"`` (input mixup) or ``"manifold"`` (manifold mixup).
        alpha: the Beta(alpha, alpha) parameter of the mixing weight; ignored for ERM.
        loss: ``"ce"`` (cross-entropy, the default for labels), ``"bce"`` (the official code's
            BCE on softmax outputs) or ``"mse"`` (squared loss on one-hot targets; the default and
            only choice for regression).
        label_smoothing: ``eps`` in [0, 1): the one-hot targets become ``(1 - eps) one_hot + eps / C``.
        layers: manifold mixup only: the layers the mixing layer is drawn from (an int or a
            collection; any layer ``0..len(blocks)``); default the model's eligible layers.
        block_grad: manifold mixup only: stop the gradient into the blocks below the mixing layer
            (the paper's ablation), so they learn only from batches mixed at or below them.
        terms: ``"all"`` (plain mixing) or, for the squared loss at the last layer only, which terms
            of its expansion to train on: ``"ordinary"``, ``"cross"``, ``"mean"`` or ``"noise"``
            (see :func:`terms_loss`).
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
        loss_fn: replaces the built-in loss: ``loss_fn(model, x_batch, y_batch, generator)``
            returns the scalar to minimise. Used to ablate terms of the loss.
        eval_every: evaluate and record every this many epochs (and after the last).
        progress: draw a progress bar; ``None`` decides by :func:`progress_enabled`.
        device: where to train; default the model's device. The model and the data are moved
            there; pairings and mixing weights are drawn on the CPU and moved as needed.

    Returns:
        The recorded loss and metrics.
    """
    seed = check_seed(seed)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    run = prepare_run(model, x, y, method=method, alpha=alpha, loss=loss, label_smoothing=label_smoothing,
                      layers=layers, block_grad=block_grad, terms=terms, epochs=epochs, batch_size=batch_size,
                      lr=lr, weight_decay=weight_decay, x_test=x_test, y_test=y_test, eval_every=eval_every,
                      progress=progress, device=device)
    shuffle, mixing = generators_for(seed)
    optimizer = adam_with_zero_grads(list(model.parameters()), run)
    history = History()
    bar = tqdm(range(1, run.epochs + 1), desc=method, disable=not run.show, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches(run.x, run.y, run.batch_size, shuffle):
            if loss_fn is None:
                loss_value = recipe_loss(model, xb, yb, run.recipe, draw(run.recipe, xb.shape[0], mixing))
            else:
                loss_value = loss_fn(model, xb, yb, mixing)
                if not isinstance(loss_value, torch.Tensor) or loss_value.numel() != 1:
                    raise TypeError(f"loss_fn must return a scalar tensor, got {type(loss_value).__name__}")
            optimizer.zero_grad(set_to_none=False)  # see adam_with_zero_grads
            loss_value.backward()
            optimizer.step()
            total += loss_value.item() * xb.shape[0]
            count += xb.shape[0]
        if epoch % run.eval_every == 0 or epoch == run.epochs:
            history.epoch.append(epoch)
            history.loss.append(total / count)
            history.train_metric.append(evaluate(model, run.x, run.y))
            if run.x_test is not None:
                history.test_metric.append(evaluate(model, run.x_test, run.y_test))
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    bar.close()
    model.eval()
    return history
