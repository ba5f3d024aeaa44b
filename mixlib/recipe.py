"""The training loss of one mini-batch: a :class:`Recipe`, its random draws, and the loss itself.

The mixing follows the official manifold-mixup code: per mini-batch, one ``lam`` drawn from
Beta(alpha, alpha), one random permutation as the pairing and, for manifold mixup, one layer
drawn uniformly from the eligible set (which contains 0, the input). The targets are the one-hot
labels mixed with the same ``lam`` and pairing. Target-only mixing (``method="target"``) makes the
same draws and mixes the targets alone: the network sees the unmixed batch, a control that shows how
much of mixup's effect comes from its soft targets.

Three training losses (``loss=``), all linear in the target:

- ``"ce"``: cross-entropy against the mixed one-hot target, which equals the mixup code's
  ``lam * CE(y) + (1 - lam) * CE(y[perm])``;
- ``"bce"``: the official manifold-mixup code's ``BCELoss(softmax(logits), target)``
  (:func:`mixlib.mixing.bce_on_softmax`);
- ``"mse"``: the squared loss ``1/2 ||target - output||^2`` on one-hot targets, the loss of the
  book's gradient analysis (and the loss for regression targets).

The ablations of chapter 06 are fields of the same :class:`Recipe`: ``layers`` restricts the
mixing layer, ``block_grad`` stops the gradient into the layers below it, and ``terms`` keeps
only some of the four terms of the squared loss at the last layer.

Every function here also takes a *stack* of models (:class:`mixlib.ensemble.StackedMLP`): inputs
``(K, B, ...)``, one mixing weight ``(K, 1, 1)`` and one pairing ``(K, B)`` per member, and a loss
per member, shape ``(K,)``. That is how :func:`mixlib.ensemble.fit_ensemble` trains K seeds with
the very loss :func:`mixlib.train.fit` trains one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive
from .manifold import StagedNet
from .mixing import random_pairing, sample_lambda

__all__ = [
    "METHODS", "LOSSES", "TERMS_OPTIONS", "TARGETS", "Recipe", "RECIPE_FIELDS", "make_recipe", "Draw", "draw",
    "partner", "soft_targets", "target_of_mix", "criterion", "terms_loss", "recipe_loss",
]

METHODS = ("erm", "input", "manifold", "target")
LOSSES = ("ce", "bce", "mse")
#: The values of :attr:`Recipe.terms`: which terms of the last-layer squared loss to keep.
TERMS_OPTIONS = ("all", "ordinary", "cross", "mean", "noise", "expected", "fluctuation")
#: The values of :attr:`Recipe.targets`: what a mixed point is trained to predict.
TARGETS = ("mixed", "own", "dominant")


@dataclass(frozen=True)
class Recipe:
    """Every setting of a training loss, declared once; :func:`make_recipe` checks them.

    Attributes:
        method: ``"erm"``, ``"input"`` (input mixup), ``"manifold"`` (manifold mixup) or ``"target"``
            (target-only mixing: the unmixed batch against the mixed targets
            ``lam one_hot(y) + (1 - lam) one_hot(y[perm])``).
        alpha: the Beta(alpha, alpha) parameter of the mixing weight; ignored for ERM.
        loss: ``"ce"`` (cross-entropy, the default for labels), ``"bce"`` (the official code's
            BCE on softmax outputs) or ``"mse"`` (squared loss on one-hot targets; the default
            and only choice for regression).
        label_smoothing: ``eps`` in [0, 1): the one-hot targets become ``(1 - eps) one_hot + eps / C``.
        layers: manifold mixup only: the layers the mixing layer is drawn from (an int or a
            collection; any layer ``0..len(blocks)``); default the model's eligible layers.
        block_grad: manifold mixup only: stop the gradient into the blocks below the mixing
            layer (the paper's ablation).
        terms: ``"all"`` (plain mixing) or, for the squared loss at the last layer only, which
            terms of its expansion to train on (see :func:`terms_loss`).
        interpolate: input mixup only: ``interpolate(x, x2, lam)`` replaces ``lam x + (1 - lam) x2``
            (a learned interpolator, :class:`mixlib.routes.Interpolator`); ``None`` mixes linearly.
        targets: input or manifold mixup only: what the mixed point is trained to predict:
            ``"mixed"`` (``lam t + (1 - lam) t[perm]``, the default), ``"own"`` (the example's own
            target: mixing on the input side alone) or ``"dominant"`` (the target of whichever of
            the two has the larger weight: mixed inputs, hard labels).
        num_classes: the number of classes, ``None`` for regression (set from the data).
    """

    method: str = "erm"
    alpha: float = 1.0
    loss: str | None = None
    label_smoothing: float = 0.0
    layers: object = None
    block_grad: bool = False
    terms: str = "all"
    interpolate: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    targets: str = "mixed"
    num_classes: int | None = None


#: The fields a caller sets (``num_classes`` comes from the data).
RECIPE_FIELDS = tuple(f.name for f in fields(Recipe) if f.name != "num_classes")


def make_recipe(model: nn.Module, recipe: Recipe | None = None, *, num_classes: int | None = None,
                **settings: object) -> Recipe:
    """Check a recipe (or its fields as keywords) against ``model`` and return it, complete.

    ``num_classes=None`` means regression (float targets). Unknown keywords are refused by name.
    """
    unknown = sorted(set(settings) - set(RECIPE_FIELDS))
    if unknown:
        raise TypeError(f"unknown recipe setting(s) {unknown}; the settings are {list(RECIPE_FIELDS)}")
    if recipe is not None:
        if not isinstance(recipe, Recipe):
            raise TypeError(f"recipe must be a mixlib Recipe, got {type(recipe).__name__}")
        if settings:
            raise ValueError(f"pass either recipe= or its fields, not both (got recipe and {sorted(settings)})")
        settings = {name: getattr(recipe, name) for name in RECIPE_FIELDS}
    r = Recipe(**settings, num_classes=num_classes)
    if r.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {r.method!r}")
    regression = num_classes is None
    loss = r.loss if r.loss is not None else ("mse" if regression else "ce")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if regression and loss != "mse":
        raise ValueError(f"loss={loss!r} needs integer class labels; float targets y mean regression (loss='mse')")
    alpha = check_positive("alpha", r.alpha) if r.method != "erm" else 1.0
    eps = r.label_smoothing
    if isinstance(eps, bool) or not isinstance(eps, Real) or not 0 <= eps < 1:
        raise ValueError(f"label_smoothing must be a number in [0, 1), got {eps!r}")
    if regression and eps:
        raise ValueError("label_smoothing needs class labels; it has no meaning for regression targets")
    if not isinstance(r.block_grad, bool):
        raise TypeError(f"block_grad must be True or False, got {type(r.block_grad).__name__}")
    if r.terms not in TERMS_OPTIONS:
        raise ValueError(f"terms must be one of {TERMS_OPTIONS}, got {r.terms!r}")
    if r.interpolate is not None and (r.method != "input" or not callable(r.interpolate)):
        raise ValueError("interpolate is for method='input': a function interpolate(x, x2, lam)")
    if r.targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {r.targets!r}")
    if r.targets != "mixed" and r.method not in ("input", "manifold"):
        raise ValueError(f"targets={r.targets!r} is for method='input' or 'manifold' (they mix the inputs or features)")
    layers = _check_layers(model, r) if r.method == "manifold" else _no_layers(r)
    if r.terms != "all":
        last = len(model.blocks) if isinstance(model, StagedNet) else None
        if (r.method != "manifold" or layers != (last,) or loss != "mse" or r.targets != "mixed"
                or not isinstance(model.head, nn.Linear)):
            raise ValueError(
                f"terms={r.terms!r} splits the squared loss at the last layer: it needs method='manifold', "
                f"loss='mse', layers=({last},) (the features the head sees) and an nn.Linear head"
            )
    return Recipe(r.method, alpha, loss, float(eps), layers, r.block_grad, r.terms, r.interpolate, r.targets,
                  num_classes)


def _check_layers(model: nn.Module, r: Recipe) -> tuple[int, ...]:
    if not isinstance(model, StagedNet):
        raise TypeError(
            f"model must be a mixlib StagedNet for method='manifold' (see mixlib.mlp), got "
            f"{type(model).__name__}; for other models use mixlib.mix_at with a custom loss_fn"
        )
    chosen = model.eligible_layers if r.layers is None else r.layers
    if isinstance(chosen, Integral) and not isinstance(chosen, bool):
        chosen = (chosen,)
    try:
        chosen = tuple(sorted(set(chosen)))
    except TypeError:
        raise TypeError(f"layers must be a collection of layer indices, got {r.layers!r}") from None
    if not chosen:
        raise ValueError("layers must contain at least one layer")
    for k in chosen:
        if isinstance(k, bool) or not isinstance(k, Integral) or k not in range(len(model.blocks) + 1):
            raise ValueError(f"layers must hold layer indices in 0..{len(model.blocks)}, got {k!r}")
    return tuple(int(k) for k in chosen)


def _no_layers(r: Recipe) -> tuple[int, ...]:
    if r.layers is not None:
        mixes = {"erm": "nothing", "input": "the input", "target": "only the targets"}[r.method]
        raise ValueError(f"layers is for method='manifold'; method={r.method!r} mixes {mixes}")
    if r.block_grad:
        raise ValueError("block_grad is for method='manifold' (it stops the gradient below the mixing layer)")
    return (0,)


# ----------------------------------------------------------------------------------------------
# The random choices of one mini-batch


@dataclass(frozen=True)
class Draw:
    """The random choices for one mini-batch: mixing weight, pairing, layer and noise.

    For one model ``lam`` is a float and ``perm`` has shape ``(B,)``; for a stack of K members
    (:meth:`stack`) ``lam`` is ``(K, 1, 1)``, ``perm`` ``(K, B)`` and ``noise`` ``(K, B, B)``.
    """

    lam: float | torch.Tensor = 1.0
    perm: torch.Tensor | None = None
    layer: int = 0
    noise: torch.Tensor | None = None

    @staticmethod
    def stack(draws: list[Draw], dtype: torch.dtype, device: torch.device) -> Draw:
        """The draws of K members (all at one layer) as one :class:`Draw` with a leading member dim."""
        first = draws[0]
        if first.perm is None:
            return first
        lam = torch.tensor([d.lam for d in draws], dtype=torch.float64).to(device=device, dtype=dtype)
        perm = torch.stack([d.perm for d in draws]).to(device)
        noise = None if first.noise is None else torch.stack([d.noise for d in draws]).to(device)
        return Draw(lam.reshape(-1, 1, 1), perm, first.layer, noise)


def draw(recipe: Recipe, batch: int, generator: torch.Generator | None) -> Draw:
    """Draw, in a fixed order, what one mini-batch of ``recipe`` needs from ``generator``.

    :func:`mixlib.train.fit` and :func:`mixlib.ensemble.fit_ensemble` both call this, so that a
    seed gives the same choices in both.
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


# ----------------------------------------------------------------------------------------------
# The loss


def partner(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``t[perm]``: each example's partner, for one model (``perm`` ``(B,)``) or per member (``(K, B)``)."""
    if perm.dim() == 1:
        return t[perm]
    index = perm.reshape(*perm.shape, *([1] * (t.dim() - 2))).expand(*perm.shape, *t.shape[2:])
    return t.gather(1, index)


def soft_targets(y: torch.Tensor, recipe: Recipe, dtype: torch.dtype) -> torch.Tensor:
    """One-hot rows (smoothed if asked) for class labels; float targets as one output per example."""
    if recipe.num_classes is None:
        return y.to(dtype).unsqueeze(-1)
    target = F.one_hot(y, recipe.num_classes).to(dtype)
    if recipe.label_smoothing:
        target = target * (1 - recipe.label_smoothing) + recipe.label_smoothing / recipe.num_classes
    return target


def criterion(out: torch.Tensor, target: torch.Tensor, loss: str, class_dim: int = -1) -> torch.Tensor:
    """The mean over the batch of ``loss`` between ``out`` and ``target``, both ``(..., B, C)``.

    Leading dimensions (one per ensemble member) are kept: the result has shape ``(...)``.
    ``class_dim=-2`` takes class-major tensors ``(..., C, B)`` instead (a softmax over a short last
    dimension is slow on the CPU, so the ensemble's fast path uses them).
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
    noise: torch.Tensor | None, alpha: float | None = None,
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
    - ``"fluctuation"``: the ordinary terms plus the cross terms *minus* their average over pairings:
      the pairing noise alone, without the penalty on the mean residual;
    - ``"expected"``: no randomness at all: the average over lambda and the pairing,
      :math:`\tfrac{1-2c}{2}\|e_i\|^2 + c\|\bar e\|^2` with :math:`c = \alpha / (2(2\alpha+1))`
      (chapter 6's expected loss, computed on each mini-batch).

    Args:
        out: unmixed outputs ``(..., B, C)``.
        target: their targets, same shape.
        lam: mixing weight, a number or a tensor shaped ``(..., 1)`` (one per ensemble member).
        perm_rows: ``perm_rows(t)`` returns ``t`` with its rows paired (``t[perm]`` per member).
        terms: one of :data:`TERMS_OPTIONS`.
        noise: for ``"noise"``, standard normal draws of shape ``(..., B, B)``.
        alpha: for ``"expected"``, the Beta(alpha, alpha) parameter of the mixing weight.
    """
    e = target - out
    batch = e.shape[-2]
    mean_residual = e.mean(-2).pow(2).sum(-1)  # ||e_bar||^2, one per member
    if terms == "expected":
        c = alpha / (2 * (2 * alpha + 1))
        return (1 - 2 * c) / 2 * e.pow(2).sum(-1).mean(-1) + c * mean_residual
    ordinary = 0.5 * (lam**2 * e.pow(2).sum(-1) + (1 - lam) ** 2 * perm_rows(e).pow(2).sum(-1)).mean(-1)
    if terms == "ordinary":
        return ordinary
    if terms in ("cross", "all"):
        cross = (lam * (1 - lam) * (e * perm_rows(e)).sum(-1)).mean(-1)
        return cross if terms == "cross" else ordinary + cross
    lam0 = lam if isinstance(lam, float) else lam.squeeze(-1)
    if terms == "fluctuation":
        cross = (lam * (1 - lam) * (e * perm_rows(e)).sum(-1)).mean(-1)
        return ordinary + cross - lam0 * (1 - lam0) * mean_residual
    mean_part = ordinary + lam0 * (1 - lam0) * mean_residual
    if terms == "mean" or batch == 1:  # one example has no partner but itself: the cross term is its mean
        return mean_part
    centred = (e - e.mean(-2, keepdim=True)).detach()
    xi = math.sqrt(2.0 / batch) * noise.to(e.dtype) @ centred  # Cov(xi_i) = 2 (centred^T centred) / B
    # Like the real fluctuations, which sum to zero over the batch (so none reaches the head's bias):
    # centre over the batch, and rescale to keep each xi_i's covariance.
    xi = (xi - xi.mean(-2, keepdim=True)) * math.sqrt(batch / (batch - 1))
    return mean_part + (lam * (1 - lam) * (e * xi).sum(-1)).mean(-1)


def recipe_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, choice: Draw) -> torch.Tensor:
    """The training loss of one mini-batch of ``model`` under ``recipe`` and the draws ``choice``.

    For one model: ``x`` ``(B, ...)``, a scalar loss. For a stack of K members at one mixing
    layer: ``x`` ``(K, B, ...)``, ``choice`` from :meth:`Draw.stack`, one loss per member ``(K,)``.
    """
    target = soft_targets(y, recipe, x.dtype)
    if recipe.method == "erm":
        return criterion(model(x).reshape(target.shape), target, recipe.loss)
    lam, perm = choice.lam, choice.perm.to(x.device)
    if recipe.method == "target":  # the draws of input mixup, but the network sees the unmixed batch
        out = model(x)
    elif recipe.terms != "all":
        noise = None if choice.noise is None else choice.noise.to(x.device)
        lam = lam if isinstance(lam, float) else lam.reshape(-1, 1)  # one per member, against (K, B)
        return terms_loss(model(x), target, lam, lambda t: partner(t, perm), recipe.terms, noise, recipe.alpha)
    elif recipe.method == "manifold":
        h = model.features(x, choice.layer)  # the hidden state at the mixing layer
        if recipe.block_grad:
            h = h.detach()  # no gradient reaches the blocks below the mixing layer
        out = model.forward_from(lam * h + (1 - lam) * partner(h, perm), choice.layer)
    elif recipe.interpolate is not None:
        out = model(recipe.interpolate(x, partner(x, perm), lam))
    else:
        out = model(lam * x + (1 - lam) * partner(x, perm))
    mixed_target = target_of_mix(target, lam, perm, recipe.targets)
    return criterion(out.reshape(mixed_target.shape), mixed_target, recipe.loss)


def target_of_mix(target: torch.Tensor, lam: torch.Tensor | float, perm: torch.Tensor, how: str) -> torch.Tensor:
    """What a mixed point is trained to predict (:attr:`Recipe.targets`), for one model or a stack.

    ``"mixed"``: ``lam t + (1 - lam) t[perm]``; ``"own"``: ``t``; ``"dominant"``: ``t`` where
    ``lam >= 1/2``, else the partner's ``t[perm]``.
    """
    if how == "own":
        return target
    if how == "dominant":
        return torch.where(torch.as_tensor(lam >= 0.5, device=target.device), target, partner(target, perm))
    return lam * target + (1 - lam) * partner(target, perm)
