"""Many seeds at once: K copies of one MLP trained as a single vectorised ensemble.

Chapters 06 and 07 compare methods over many seeds. Training K models one after another
costs K times the Python overhead of a small model's training step; stacking their weights
into ``(K, out, in)`` tensors and running all K forward and backward passes as batched matrix
products costs little more than one.

Nothing about the training changes. Each member keeps its own initial weights, its own
mini-batch order and its own mixing weight, pairing and mixing layer, drawn from its own
generators in the order :func:`mixlib.train.fit` draws them (:func:`mixlib.train.draw`). The
loss is the *sum* of the members' batch-mean losses, so the gradient that reaches member
``k``'s weights is exactly the gradient of its own loss; and Adam (weight decay included) is
elementwise, so one Adam over the stacked weights is K independent Adams. Model ``k`` therefore
ends where ``fit(models[k], x, y, seed=seeds[k], ...)`` would have left it, up to the rounding of
batched instead of single matrix products (``tests/test_ensemble.py`` checks this).

Only networks built by :func:`mixlib.manifold.mlp` (blocks of ``Linear`` then an activation,
and a ``Linear`` head) are stacked; :func:`stackable` says whether a model qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .manifold import StagedNet
from .train import (
    History,
    Recipe,
    adam_with_zero_grads,
    check_seed,
    criterion,
    draw,
    generators_for,
    prepare_run,
    soft_targets,
    terms_loss,
)

__all__ = ["stackable", "fit_ensemble"]

_ACTIVATIONS = (nn.ReLU, nn.Tanh)


def _layers_of(model: nn.Module) -> list[tuple[nn.Linear, type | None]] | None:
    """``[(linear, activation type), ..., (head, None)]`` for an mlp-shaped StagedNet, else None."""
    if not isinstance(model, StagedNet) or not isinstance(model.head, nn.Linear):
        return None
    layers: list[tuple[nn.Linear, type | None]] = []
    for block in model.blocks:
        if not (isinstance(block, nn.Sequential) and len(block) == 2 and isinstance(block[0], nn.Linear)
                and type(block[1]) in _ACTIVATIONS):
            return None
        layers.append((block[0], type(block[1])))
    layers.append((model.head, None))
    if any(lin.bias is None for lin, _ in layers):
        return None
    return layers


def stackable(model: nn.Module) -> bool:
    """Whether :func:`fit_ensemble` can train ``model``: a :func:`~mixlib.manifold.mlp` network."""
    return _layers_of(model) is not None


def _signature(model: nn.Module) -> tuple:
    layers = _layers_of(model)
    return tuple((lin.in_features, lin.out_features, act) for lin, act in layers) + (model.eligible_layers,)


class _Stack:
    """The stacked weights of K mlp models: ``weight[l]`` is ``(K, out, in)``, ``bias[l]`` is ``(K, 1, out)``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        per_model = [_layers_of(m) for m in models]
        self.activations = [act for _, act in per_model[0]]
        self.weight = [nn.Parameter(torch.stack([m[i][0].weight.detach() for m in per_model]).clone())
                       for i in range(len(self.activations))]
        self.bias = [nn.Parameter(torch.stack([m[i][0].bias.detach() for m in per_model]).unsqueeze(1).clone())
                     for i in range(len(self.activations))]

    def parameters(self) -> list[nn.Parameter]:
        return [p for pair in zip(self.weight, self.bias, strict=True) for p in pair]

    def block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``i`` (a block, or the head for the last ``i``) applied to ``h`` of shape ``(K, B, in)``."""
        out = torch.baddbmm(self.bias[i], h, self.weight[i].transpose(1, 2))
        act = self.activations[i]
        if act is nn.ReLU:
            return torch.relu(out)
        if act is nn.Tanh:
            return torch.tanh(out)
        return out

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """All members on the same inputs ``x`` ``(B, d)`` or on their own ``(K, B, d)``."""
        h = x if x.dim() == 3 else x.expand(len(self.weight[0]), *x.shape)
        for i in range(start, len(self.weight)):
            h = self.block(i, h)
        return h

    def write_back(self, models: Sequence[nn.Module]) -> None:
        with torch.no_grad():
            for k, model in enumerate(models):
                for i, (lin, _) in enumerate(_layers_of(model)):
                    lin.weight.copy_(self.weight[i][k])
                    lin.bias.copy_(self.bias[i][k, 0])


def _rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[k][index[k]]`` for every member ``k``: ``t`` is ``(K, B, ...)``, ``index`` is ``(K, B)``."""
    return t[torch.arange(len(t), device=t.device).unsqueeze(1), index]


class _PermuteRows(torch.autograd.Function):
    """``t[k][perm[k]]`` for ``t`` of shape ``(K, B, d)``, given as flat row indices into ``(K * B, d)``.

    Speed only: one ``index_select`` over the flattened rows is much cheaper than a gather with an
    expanded index, and autograd would send the gradient back through a scatter-add; for a
    permutation the gradient is the same selection with the inverse permutation.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor, rows: torch.Tensor, inverse_rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse_rows)
        return t.reshape(-1, t.shape[-1]).index_select(0, rows).reshape(t.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inverse_rows,) = ctx.saved_tensors
        return grad.reshape(-1, grad.shape[-1]).index_select(0, inverse_rows).reshape(grad.shape), None, None


def _member_losses(
    stack: _Stack, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, draws: list
) -> torch.Tensor:
    """One loss per member for the batches ``x`` ``(K, B, d)``, ``y`` ``(K, B)`` and their draws."""
    target = soft_targets(y.reshape(-1), recipe, x.dtype).reshape(*y.shape, -1)
    if recipe.method == "erm":
        return criterion(stack.forward(x), target, recipe.loss)
    device = x.device
    lam = torch.tensor([d.lam for d in draws], dtype=x.dtype, device=device).reshape(-1, 1, 1)
    perm = torch.stack([d.perm for d in draws]).to(device)
    if recipe.terms != "all":
        noise = None
        if recipe.terms == "noise":
            noise = torch.stack([d.noise for d in draws]).to(device)
        return terms_loss(stack.forward(x), target, lam.squeeze(-1), lambda t: _rows(t, perm), recipe.terms, noise)
    # Mix member k's hidden state at its own layer: layer l is the input of block l. A member that
    # mixes elsewhere gets weight 1 here, and lerp(partner, h, 1) is h exactly (value and gradient).
    layer = torch.tensor([d.layer for d in draws], device=device).reshape(-1, 1, 1)
    offsets = torch.arange(len(perm), device=device).unsqueeze(1) * perm.shape[1]
    rows, inverse_rows = (perm + offsets).reshape(-1), (perm.argsort(dim=1) + offsets).reshape(-1)
    h = x
    for i in range(len(stack.weight)):
        if i in recipe.layers:
            here = layer == i
            if recipe.block_grad:
                h = torch.where(here, h.detach(), h)  # no gradient below the mixing layer
            weight = torch.where(here, lam, torch.ones_like(lam))
            h = torch.lerp(_PermuteRows.apply(h, rows, inverse_rows), h, weight)
        h = stack.block(i, h)
    mixed_target = torch.lerp(_rows(target, perm), target, lam)
    return criterion(h, mixed_target, recipe.loss)


@torch.no_grad()
def _metric(stack: _Stack, x: torch.Tensor, y: torch.Tensor, regression: bool) -> torch.Tensor:
    out = stack.forward(x)
    if regression:
        return ((out.squeeze(-1) - y) ** 2).mean(-1)
    return (out.argmax(-1) == y).double().mean(-1)


def fit_ensemble(
    models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, seeds: Sequence[int], **fit_kwargs: object
) -> list[History]:
    """Train K :func:`~mixlib.manifold.mlp` models in place as one vectorised ensemble.

    Model ``k`` ends as ``fit(models[k], x, y, seed=seeds[k], **fit_kwargs)`` would leave it (to
    float tolerance), and its :class:`~mixlib.train.History` is the one that call would return.

    Args:
        models: K untrained (or partly trained) models of one architecture, each built by
            :func:`~mixlib.manifold.mlp` with the same widths, activation and eligible layers.
        x: training inputs, as for :func:`~mixlib.train.fit`.
        y: training targets, as for :func:`~mixlib.train.fit`.
        seeds: one seed per model: its mini-batch order, mixing weights, pairings and layers.
        **fit_kwargs: any other argument of :func:`~mixlib.train.fit` except ``loss_fn``
            (``method``, ``alpha``, ``loss``, ``layers``, ``epochs``, ``device``, ...).

    Returns:
        One :class:`~mixlib.train.History` per model.
    """
    models = list(models) if isinstance(models, Sequence) and not isinstance(models, nn.Module) else None
    if not models:
        raise TypeError("models must be a non-empty list of models built by mixlib.mlp")
    for k, model in enumerate(models):
        if not stackable(model):
            raise TypeError(
                f"models[{k}] ({type(model).__name__}) is not an mlp-shaped StagedNet; train it with mixlib.fit"
            )
        if _signature(model) != _signature(models[0]):
            raise ValueError(f"models[{k}] has a different architecture from models[0]; all K must match")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("models must be K distinct models (the same model appears twice)")
    if not isinstance(seeds, (str, bytes)) and isinstance(seeds, Iterable):
        seeds = list(seeds)  # a list, a range or a NumPy array
    if not isinstance(seeds, list) or len(seeds) != len(models):
        raise ValueError(f"seeds must be a sequence with one seed per model ({len(models)}), got {seeds!r}")
    seeds = [check_seed(s, "seeds[i]") for s in seeds]
    if "loss_fn" in fit_kwargs or "seed" in fit_kwargs:
        raise ValueError("fit_ensemble takes seeds= (one per model) and no loss_fn; use mixlib.fit for a custom loss")
    run = prepare_run(models[0], x, y, **fit_kwargs)
    for model in models[1:]:
        model.to(run.device)
    recipe = run.recipe
    regression = recipe.num_classes is None
    stack = _Stack(models)
    optimizer = adam_with_zero_grads(stack.parameters(), run)
    streams = [generators_for(s) for s in seeds]  # (shuffle, mixing) per member, as in fit
    histories = [History() for _ in models]
    n = run.x.shape[0]
    bar = tqdm(range(1, run.epochs + 1), desc=f"{recipe.method} x{len(models)}", disable=not run.show, leave=False)
    for epoch in bar:
        orders = torch.stack([torch.randperm(n, generator=shuffle) for shuffle, _ in streams]).to(run.device)
        total = torch.zeros(len(models), dtype=torch.float64, device=run.device)
        for start in range(0, n, run.batch_size):
            idx = orders[:, start : start + run.batch_size]
            draws = [draw(recipe, idx.shape[1], mixing) for _, mixing in streams]
            losses = _member_losses(stack, run.x[idx], run.y[idx], recipe, draws)
            optimizer.zero_grad(set_to_none=False)
            losses.sum().backward()  # member k's weights get the gradient of its own loss only
            optimizer.step()
            total += losses.detach().double() * idx.shape[1]
        if epoch % run.eval_every == 0 or epoch == run.epochs:
            train = _metric(stack, run.x, run.y, regression).tolist()
            test = _metric(stack, run.x_test, run.y_test, regression).tolist() if run.x_test is not None else None
            for k, history in enumerate(histories):
                history.epoch.append(epoch)
                history.loss.append(float(total[k]) / n)
                history.train_metric.append(train[k])
                if test is not None:
                    history.test_metric.append(test[k])
    bar.close()
    stack.write_back(models)
    for model in models:
        model.eval()
    return histories
