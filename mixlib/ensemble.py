"""Many seeds at once: K copies of one MLP trained as a single vectorised ensemble.

Chapters 06 and 07 compare methods over many seeds. Training K models one after another
costs K times the Python overhead of a small model's training step; stacking their weights
into ``(K, in, out)`` tensors and running all K forward and backward passes as batched matrix
products costs little more than one.

Nothing about the training changes. Each member keeps its own initial weights, its own
mini-batch order and its own mixing weight, pairing and mixing layer, drawn from its own
generators in the order :func:`mixlib.train.fit` draws them (:func:`mixlib.train.draw`). The
loss is the *sum* of the members' batch-mean losses, so the gradient that reaches member
``k``'s weights is exactly the gradient of its own loss; and Adam (weight decay included) is
elementwise, so one Adam over the stacked weights is K independent Adams. Model ``k`` therefore
ends where ``fit(models[k], x, y, seed=seeds[k], ...)`` would have left it, up to the rounding of
batched instead of single matrix products and of a fused Adam update (``tests/test_ensemble.py``
checks this for every recipe).

Only networks built by :func:`mixlib.manifold.mlp` (blocks of ``Linear`` then an activation,
and a ``Linear`` head) are stacked; :func:`stackable` says whether a model qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
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
    """``[(linear, activation type), ..., (head, None)]`` for an mlp-shaped StagedNet, else None.

    Only the plain modules qualify: a subclass could compute something else in ``forward``, a
    hook or a parametrisation (weight norm) changes what the weights mean, and a frozen weight
    must stay frozen; the stacked model would ignore all of these.
    """
    if type(model) is not StagedNet or type(model.head) is not nn.Linear:
        return None
    layers: list[tuple[nn.Linear, type | None]] = []
    for block in model.blocks:
        if not (type(block) is nn.Sequential and len(block) == 2 and type(block[0]) is nn.Linear
                and type(block[1]) in _ACTIVATIONS):
            return None
        layers.append((block[0], type(block[1])))
    layers.append((model.head, None))
    if any(lin.bias is None for lin, _ in layers):
        return None
    for module in model.modules():
        if module._forward_hooks or module._forward_pre_hooks or getattr(module, "parametrizations", None):
            return None
    params = [p for lin, _ in layers for p in (lin.weight, lin.bias)]
    if {id(p) for p in model.parameters()} != {id(p) for p in params} or not all(p.requires_grad for p in params):
        return None
    if len({(p.dtype, p.device) for p in params}) != 1:
        return None
    return layers


def stackable(model: nn.Module) -> bool:
    """Whether :func:`fit_ensemble` can train ``model``: a :func:`~mixlib.manifold.mlp` network."""
    return _layers_of(model) is not None


def _signature(model: nn.Module) -> tuple:
    layers = _layers_of(model)
    shapes = tuple((lin.in_features, lin.out_features, act) for lin, act in layers)
    return shapes + (model.eligible_layers, model.head.weight.dtype)


class _Stack:
    """The stacked weights of K mlp models: ``weight[l]`` is ``(K, in, out)``, ``bias[l]`` is ``(K, 1, out)``.

    The weights are stored transposed (``Linear`` keeps ``(out, in)``) so that ``h @ weight`` needs no
    transpose and its gradient comes out of the backward already in the parameter's layout, with
    no copy.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        per_model = [_layers_of(m) for m in models]
        self.activations = [act for _, act in per_model[0]]
        self.weight = [nn.Parameter(torch.stack([m[i][0].weight.detach().T for m in per_model]).contiguous())
                       for i in range(len(self.activations))]
        self.bias = [nn.Parameter(torch.stack([m[i][0].bias.detach() for m in per_model]).unsqueeze(1).clone())
                     for i in range(len(self.activations))]

    def parameters(self) -> list[nn.Parameter]:
        return [p for pair in zip(self.weight, self.bias, strict=True) for p in pair]

    def block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``i`` (a block, or the head for the last ``i``) applied to ``h`` of shape ``(K, B, in)``."""
        out = torch.baddbmm(self.bias[i], h, self.weight[i])
        act = self.activations[i]
        if act is nn.ReLU:
            return torch.relu_(out)  # in place: baddbmm needs only its inputs for the backward
        if act is nn.Tanh:
            return torch.tanh_(out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All members on the same inputs ``x`` ``(B, d)`` or on their own ``(K, B, d)``."""
        h = x if x.dim() == 3 else x.expand(len(self.weight[0]), *x.shape)
        for i in range(len(self.weight)):
            h = self.block(i, h)
        return h

    def write_back(self, models: Sequence[nn.Module]) -> None:
        with torch.no_grad():
            for k, model in enumerate(models):
                for i, (lin, _) in enumerate(_layers_of(model)):
                    lin.weight.copy_(self.weight[i][k].T)
                    lin.bias.copy_(self.bias[i][k, 0])


def _rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[k][index[k]]`` for every member ``k``: ``t`` is ``(K, B, ...)``, ``index`` is ``(K, B)``."""
    return t[torch.arange(len(t), device=t.device).unsqueeze(1), index]


def _wide(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """float64 where the device has it (not Apple's MPS), else ``dtype``."""
    return dtype if device.type == "mps" else torch.float64


def _select_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of ``t`` ``(K, B, d)`` picked by flat indices into its ``K * B`` rows (one index_select)."""
    return t.reshape(-1, t.shape[-1]).index_select(0, rows).reshape(t.shape)


def _losses_and_gradients(
    stack: _Stack, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, draws: list
) -> torch.Tensor:
    """One loss per member for the batches ``x`` ``(K, B, d)``, ``y`` ``(K, B)`` and their draws.

    Writes the gradient of the summed losses into the ``.grad`` of every stacked parameter, so
    that member ``k``'s weights get the gradient of its own loss. This is the speed-critical part
    of the ensemble, so the network's backward pass is written out by hand: no graph to record,
    no gradient buffers to allocate and add up, each weight's gradient written straight into its
    ``.grad``. Only the loss on the network's outputs goes through autograd, which keeps every
    loss and ``terms`` variant as :func:`mixlib.train.fit` computes it. ``tests/test_ensemble.py``
    checks the result against ``fit`` for every recipe.
    """
    target = soft_targets(y.reshape(-1), recipe, x.dtype).reshape(*y.shape, -1)
    device = x.device
    members, batch = y.shape
    mixing_layers: list[int] = []
    if recipe.method != "erm":
        # Small per-member tensors go through NumPy: torch.tensor(list) stores element by element.
        lams = np.array([d.lam for d in draws])
        lam = torch.from_numpy(lams).to(device=device, dtype=x.dtype).reshape(-1, 1, 1)
        perm = torch.stack([d.perm for d in draws]).to(device)
        # Member k's partners as flat indices into the K * B rows, and the inverse permutation.
        rows = (perm + torch.arange(members, device=device).unsqueeze(1) * batch).reshape(-1)
        inverse_rows = torch.empty_like(rows).scatter_(0, rows, torch.arange(members * batch, device=device))
        if recipe.terms == "all":
            # Member k mixes its hidden state at its own layer (layer l is the input of block l). A
            # member that mixes elsewhere gets weight 1 there: lerp(partner, h, 1) is h exactly.
            chosen = np.array([d.layer for d in draws])
            mixing_layers = [i for i in recipe.layers if i in chosen]
            here = chosen == np.array(mixing_layers).reshape(-1, 1)  # (layers, K): who mixes where
            weights = torch.from_numpy(np.where(here, lams, 1.0)).to(device=device, dtype=x.dtype)
            weights = weights.reshape(len(mixing_layers), members, 1, 1)
            blocked = torch.from_numpy(here).to(device).reshape(len(mixing_layers), members, 1, 1)
    # Forward pass, keeping each layer's input (after mixing) and output for the backward pass.
    inputs, outputs = [], []
    h = x
    with torch.no_grad():
        for i in range(len(stack.weight)):
            if i in mixing_layers:
                h = torch.lerp(_select_rows(h, rows), h, weights[mixing_layers.index(i)])
            inputs.append(h)
            h = stack.block(i, h)
            outputs.append(h)
    # The loss on the outputs, and its gradient with respect to them, by autograd.
    out = h.detach().requires_grad_()
    with torch.enable_grad():
        if recipe.terms != "all":
            noise = torch.stack([d.noise for d in draws]).to(device) if recipe.terms == "noise" else None
            # The terms' weights from lambda in double precision, as fit computes them from a Python
            # float: rounded to float32 first, a lambda within 6e-8 of 1 would zero (1 - lambda).
            precise = torch.from_numpy(lams).to(device=device, dtype=_wide(x.dtype, device)).reshape(-1, 1)
            losses = terms_loss(out, target, precise, lambda t: _rows(t, perm), recipe.terms, noise)
        else:
            if recipe.method != "erm":
                target = torch.lerp(_select_rows(target, rows), target, lam)
            # class-major copies (K, C, B): the softmax then runs along a long axis, much faster
            losses = criterion(out.transpose(1, 2).contiguous(), target.transpose(1, 2), recipe.loss, class_dim=-2)
        (grad,) = torch.autograd.grad(losses.sum(), out)
    # Backward pass through the blocks by hand, top down; gradients written into .grad.
    with torch.no_grad():
        for i in reversed(range(len(stack.weight))):
            activation = stack.activations[i]
            if activation is nn.ReLU:  # autograd's own ReLU backward: zero where the output is 0
                grad = torch.ops.aten.threshold_backward(grad, outputs[i], 0)
            elif activation is nn.Tanh:
                grad = grad * (1 - outputs[i] * outputs[i])
            torch.bmm(inputs[i].transpose(1, 2), grad, out=stack.weight[i].grad)
            torch.sum(grad, dim=1, keepdim=True, out=stack.bias[i].grad)
            if i == 0:
                break  # no gradient for the inputs
            grad = torch.bmm(grad, stack.weight[i].transpose(1, 2))
            if i in mixing_layers:
                # d/dh of lerp(h[partner], h, w): w * g + (1 - w) * g at the rows that took h as partner
                j = mixing_layers.index(i)
                grad = torch.lerp(_select_rows(grad, inverse_rows), grad, weights[j])
                if recipe.block_grad:  # no gradient below the mixing layer for the members mixing here
                    grad = grad.masked_fill_(blocked[j], 0.0)
    return losses.detach()


@torch.no_grad()
def _metric(stack: _Stack, x: torch.Tensor, y: torch.Tensor, regression: bool) -> torch.Tensor:
    out = stack.forward(x)
    if regression:  # one output per example; targets shaped (n,) or (n, 1)
        return ((out.reshape(len(out), -1) - y.reshape(1, -1)) ** 2).mean(-1)
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
            raise ValueError(f"models[{k}] has a different architecture or dtype from models[0]; all K must match")
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
    if run.x.dim() != 2:
        raise ValueError(f"fit_ensemble needs x of shape (n, features), got {tuple(run.x.shape)}; use mixlib.fit")
    for model in models[1:]:
        model.to(run.device)
    recipe = run.recipe
    regression = recipe.num_classes is None
    stack = _Stack(models)
    optimizer = adam_with_zero_grads(stack.parameters(), run, fused=True)
    streams = [generators_for(s) for s in seeds]  # (shuffle, mixing) per member, as in fit
    histories = [History() for _ in models]
    n = run.x.shape[0]
    bar = tqdm(range(1, run.epochs + 1), desc=f"{recipe.method} x{len(models)}", disable=not run.show, leave=False)
    for epoch in bar:
        orders = torch.stack([torch.randperm(n, generator=shuffle) for shuffle, _ in streams]).to(run.device)
        batch_losses = []
        for start in range(0, n, run.batch_size):
            idx = orders[:, start : start + run.batch_size]
            draws = [draw(recipe, idx.shape[1], mixing) for _, mixing in streams]
            flat = idx.reshape(-1)  # index_select on flat rows: cheaper than indexing with a (K, B) index
            xb = run.x.index_select(0, flat).reshape(*idx.shape, *run.x.shape[1:])
            losses = _losses_and_gradients(stack, xb, run.y.index_select(0, flat).reshape(idx.shape), recipe, draws)
            optimizer.step()
            batch_losses.append(losses.detach() * idx.shape[1])
        total = torch.stack(batch_losses).double().sum(0)
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
