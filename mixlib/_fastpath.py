"""The ensemble's fast path: one training step with the network's backward pass written by hand.

:func:`mixlib.ensemble.fit_ensemble` uses this for the recipes of :mod:`mixlib.recipe` when no extra
loss is added (``fast=True``, the default). It computes what autograd computes on
:func:`mixlib.ensemble.member_losses`, about twice as fast on the CPU: no graph to record, no
gradient buffers to allocate and add up, each weight's gradient written straight into its
``.grad``. Only the loss on the network's outputs goes through autograd, so every loss and
``terms`` variant is still :mod:`mixlib.recipe`'s own code. ``tests/test_ensemble.py`` checks
the result against the plain path and against ``fit`` for every recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .recipe import Draw, Recipe, criterion, partner, soft_targets, terms_loss

if TYPE_CHECKING:
    from .ensemble import StackedMLP


def _wide(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """float64 where the device has it (not Apple's MPS), else ``dtype``."""
    return dtype if device.type == "mps" else torch.float64


def _select_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of ``t`` ``(K, B, d)`` picked by flat indices into its ``K * B`` rows (one index_select)."""
    return t.reshape(-1, t.shape[-1]).index_select(0, rows).reshape(t.shape)


#: The methods whose mixing this module writes out by hand. A method added to mixlib.recipe trains
#: on the plain autograd path until it is taught here too (and tested against it).
METHODS = ("erm", "input", "manifold", "target")


def handles(recipe: Recipe) -> bool:
    """Whether this fast path computes ``recipe``'s loss (no learned interpolator, a method it knows)."""
    return recipe.method in METHODS and recipe.interpolate is None


def losses_and_gradients(
    stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, draws: list[Draw]
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
        if recipe.terms == "all" and recipe.method != "target":  # target-only mixing mixes no layer
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
            h = torch.baddbmm(stack.bias[i], h, stack.weight[i])
            if stack.activations[i] is nn.ReLU:
                h = torch.relu_(h)  # in place: baddbmm needs only its inputs for the backward
            elif stack.activations[i] is nn.Tanh:
                h = torch.tanh_(h)
            outputs.append(h)
    # The loss on the outputs, and its gradient with respect to them, by autograd.
    out = h.detach().requires_grad_()
    with torch.enable_grad():
        if recipe.terms != "all":
            noise = torch.stack([d.noise for d in draws]).to(device) if recipe.terms == "noise" else None
            # The terms' weights from lambda in double precision, as fit computes them from a Python
            # float: rounded to float32 first, a lambda within 6e-8 of 1 would zero (1 - lambda).
            precise = torch.from_numpy(lams).to(device=device, dtype=_wide(x.dtype, device)).reshape(-1, 1)
            losses = terms_loss(out, target, precise, lambda t: partner(t, perm), recipe.terms, noise, recipe.alpha)
        else:
            if recipe.targets == "dominant":
                target = torch.where(lam >= 0.5, target, _select_rows(target, rows))
            elif recipe.method != "erm" and recipe.targets == "mixed":
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


