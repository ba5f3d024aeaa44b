"""Many seeds at once: K copies of one MLP trained as a single vectorised ensemble.

Chapters 06 and 07 compare methods over many seeds, learning rates and data draws. Training K
models one after another costs K times the Python overhead of a small model's training step;
stacking their weights into ``(K, in, out)`` tensors (:class:`StackedMLP`) and running all K
forward and backward passes as batched matrix products costs little more than one.

Nothing about the training changes. Member ``k`` keeps its own initial weights, mini-batch order
and mixing draws, taken from its own generators in the order :func:`mixlib.train.fit` takes them,
and its loss is :func:`mixlib.recipe.recipe_loss` on its own rows of the stack. The ensemble
minimises the *sum* of the members' losses, so the gradient that reaches member ``k``'s weights is
that of its own loss, and Adam is elementwise, so one Adam over the stacked weights is K Adams.
Member ``k`` therefore ends where ``fit(models[k], x, y, seed=seeds[k], ...)`` would leave it, up
to the rounding of batched matrix products (``tests/test_ensemble.py`` checks every option).

Only networks built by :func:`mixlib.manifold.mlp` (blocks of ``Linear`` then an activation, and a
``Linear`` head) are stacked; :func:`stackable` says whether a model qualifies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import _fastpath
from ._checks import check_flag, check_positive, check_seeds
from .manifold import StagedNet, mlp
from .metrics import score
from .recipe import Draw, Recipe, draw, recipe_loss
from .train import ExtraLoss, History, Run, adam_with_zero_grads, check_losses, generators_for, prepare_run

__all__ = ["StackedMLP", "stackable", "seeded_mlps", "member_losses", "fit_ensemble"]

_ACTIVATIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}


def _layers_of(model: nn.Module) -> list[tuple[nn.Linear, type | None]] | None:
    """``[(linear, activation type), ..., (head, None)]`` for an mlp-shaped StagedNet, else None.

    Only the plain modules qualify: a subclass could compute something else in ``forward``, a
    hook or a parametrisation (weight norm) changes what the weights mean, and a frozen weight
    must stay frozen; the stack would ignore all of these.
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
    shapes = tuple((lin.in_features, lin.out_features, act) for lin, act in _layers_of(model))
    return shapes + (model.eligible_layers, model.head.weight.dtype)


class _Forward:
    """The forward pass of stacked members, as :class:`~mixlib.manifold.StagedNet` names its parts.

    Hidden states carry a leading member dimension: ``h`` is ``(K, B, width)``; layer ``l`` is the
    input of block ``l`` and layer ``depth`` the features the head reads.
    """

    depth: int
    size: int

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor, type | None]:  # pragma: no cover
        """Layer ``i``'s stacked bias ``(K, 1, out)``, weight ``(K, in, out)`` and activation."""
        raise NotImplementedError

    def block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``i`` (a block, or the head for ``i = depth``) applied to ``h`` ``(K, B, in)``."""
        bias, weight, act = self.layer(i)
        out = torch.baddbmm(bias, h, weight)
        return out if act is None else _ACTIVATIONS[act](out)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The hidden states at ``layer`` (default the last), for inputs ``(K, B, d)`` or shared ``(B, d)``."""
        h = x if x.dim() == 3 else x.expand(self.size, *x.shape)
        for i in range(self.depth if layer is None else layer):
            h = self.block(i, h)
        return h

    def forward_from(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Continue from the hidden states ``h`` at ``layer`` to the outputs ``(K, B, out)``."""
        for i in range(layer, self.depth + 1):
            h = self.block(i, h)
        return h

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.features(x), self.depth)


class StackedMLP(_Forward, nn.Module):
    """K :func:`~mixlib.manifold.mlp` networks of one architecture as one module.

    ``weight[i]`` is ``(K, in, out)`` and ``bias[i]`` is ``(K, 1, out)``: layer ``i`` of member ``k``
    maps ``h`` to ``act(h @ weight[i][k] + bias[i][k])`` (the head has no activation). Stored
    transposed (``Linear`` keeps ``(out, in)``), so the batched product needs no transpose.

    Args:
        models: K stackable models (:func:`stackable`) of one architecture; their weights are copied.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        nn.Module.__init__(self)
        per_model = [_layers_of(m) for m in models]
        self.activations = [act for _, act in per_model[0]]
        self.weight = nn.ParameterList(
            torch.stack([m[i][0].weight.detach().T for m in per_model]).contiguous()
            for i in range(len(self.activations)))
        self.bias = nn.ParameterList(
            torch.stack([m[i][0].bias.detach() for m in per_model]).unsqueeze(1).clone()
            for i in range(len(self.activations)))
        self.size, self.depth = len(models), len(self.activations) - 1
        self.eligible_layers = models[0].eligible_layers

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], *args: object, **kwargs: object) -> StackedMLP:
        """The stack of :func:`seeded_mlps`."""
        return cls(seeded_mlps(seeds, *args, **kwargs))

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor, type | None]:
        """Layer ``i``'s stacked bias ``(K, 1, out)``, weight ``(K, in, out)`` and activation."""
        return self.bias[i], self.weight[i], self.activations[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs ``(K, B, out)`` for inputs ``(K, B, d)``, or ``(B, d)`` shared by all members."""
        return _Forward.__call__(self, x)

    __call__ = nn.Module.__call__

    def _members(self, index: torch.Tensor) -> _Forward:
        """The members ``index`` (a 1-d int64 tensor) as a smaller stack; gradients reach this one."""
        return _Members(self, index)

    def member(self, k: int) -> StagedNet:
        """Member ``k`` as an ordinary :func:`~mixlib.manifold.mlp` (a copy, on the stack's device, in eval mode)."""
        if not 0 <= k < self.size:
            raise ValueError(f"k must be in 0..{self.size - 1}, got {k}")
        widths = [w.shape[2] for w in self.weight[:-1]]
        activation = "tanh" if nn.Tanh in self.activations else "relu"
        net = mlp(self.weight[0].shape[1], widths, self.weight[-1].shape[2], activation=activation,
                  eligible_layers=self.eligible_layers).to(self.weight[0])
        self.write_back_one(k, net)
        return net.eval()

    @torch.no_grad()
    def write_back_one(self, k: int, model: nn.Module) -> None:
        """Copy member ``k``'s weights into ``model`` (an mlp of the same architecture)."""
        for i, (lin, _) in enumerate(_layers_of(model)):
            lin.weight.copy_(self.weight[i][k].T)
            lin.bias.copy_(self.bias[i][k, 0])


def seeded_mlps(seeds: Sequence[int], *args: object, **kwargs: object) -> list[StagedNet]:
    """One ``mlp(*args, **kwargs)`` per seed, built right after ``torch.manual_seed(seed)``.

    These are the initial weights :func:`mixlib.experiments.compare_methods` gives seed ``k``; the
    global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        models = []
        for s in check_seeds(seeds):
            torch.manual_seed(s)
            models.append(mlp(*args, **kwargs))
    return models


class _Members(_Forward):
    """Some members of a :class:`StackedMLP`, for the members that mix at one layer."""

    def __init__(self, stack: StackedMLP, index: torch.Tensor) -> None:
        self.stack, self.index = stack, index
        self.size, self.depth = len(index), stack.depth

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor, type | None]:
        bias, weight, act = self.stack.layer(i)
        return bias[self.index], weight[self.index], act


def member_losses(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, draws: list[Draw]
                  ) -> torch.Tensor:
    """Each member's :func:`~mixlib.recipe.recipe_loss` on its batch: ``x`` ``(K, B, d)``, ``y`` ``(K, B)``.

    Members that mix at the same layer are computed together; the result is ``(K,)``, by autograd.
    """
    groups: dict[int, list[int]] = {}
    for k, d in enumerate(draws):
        groups.setdefault(d.layer, []).append(k)
    losses = x.new_zeros(stack.size)
    # The terms' weights from lambda in double precision, as fit computes them from a Python float:
    # rounded to float32 first, a lambda within 6e-8 of 1 would zero (1 - lambda).
    wide = recipe.terms != "all" and x.device.type != "mps"
    for members in groups.values():
        index = torch.tensor(members, device=x.device)
        net, xs, ys = (stack, x, y) if len(members) == stack.size else (stack._members(index), x[index], y[index])
        choice = Draw.stack([draws[k] for k in members], torch.float64 if wide else x.dtype, x.device)
        losses = losses.index_add(0, index, recipe_loss(net, xs, ys, recipe, choice).to(losses.dtype))
    return losses


def fit_ensemble(
    models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, seeds: Sequence[int],
    lr: float | Sequence[float] = 1e-2, extra_loss: ExtraLoss | None = None, fast: bool = True,
    monitor: Callable[[int, StackedMLP], None] | None = None, **fit_kwargs: object,
) -> list[History]:
    """Train K :func:`~mixlib.manifold.mlp` models in place as one vectorised ensemble.

    Model ``k`` ends as ``fit(models[k], x[k], y[k], seed=seeds[k], lr=lr[k], ...)`` would leave
    it (to float tolerance), and its :class:`~mixlib.train.History` is the one that call returns.

    Args:
        models: K models of one architecture, each built by :func:`~mixlib.manifold.mlp`.
        x: training inputs ``(n, d)`` shared by all members, or ``(K, n, d)``: one data draw each.
        y: training targets ``(n,)``, or ``(K, n)`` (for example a label-noise draw per member).
        seeds: one seed per model: its mini-batch order, mixing weights, pairings and layers.
        lr: Adam's learning rate, one for all or one per member (a learning-rate sweep).
        extra_loss: a term added to every member's loss, as in :func:`~mixlib.train.fit`; it gets
            the whole :class:`StackedMLP` and returns one loss per member (an ``nn.Module``'s
            parameters, stacked with a leading member dimension, are trained too).
        fast: use the hand-written backward pass of ``mixlib/_fastpath.py`` for the recipes it
            writes out (no ``extra_loss``, no ``interpolate``, a method it knows); ``False``
            always differentiates :func:`member_losses` by autograd.
        monitor: ``monitor(epoch, stack)`` is called after each evaluation (every ``eval_every``
            epochs), with gradients off: a place to record more than the histories hold (for
            example every member's test logits, to measure at an epoch chosen later).
        **fit_kwargs: the recipe (``recipe=`` or its fields) and the other arguments of
            :func:`~mixlib.train.fit` (``epochs``, ``batch_size``, ``x_test``, ``y_test`` shaped like
            ``x`` and ``y``, ``device``, ...), except ``seed`` and ``loss_fn``.

    Returns:
        One :class:`~mixlib.train.History` per model.
    """
    models = _check_models(models)
    size = len(models)
    seeds = check_seeds(seeds, size=size)
    if "loss_fn" in fit_kwargs or "seed" in fit_kwargs:
        raise ValueError("fit_ensemble takes seeds= (one per model) and no loss_fn; add a term with extra_loss")
    check_flag("fast", fast)
    if monitor is not None and not callable(monitor):
        raise TypeError(f"monitor must be a function monitor(epoch, stack), got {type(monitor).__name__}")
    lrs = _check_lrs(lr, size)
    extra_params = check_losses(None, extra_loss)
    run, xs, ys, x_test, y_test = _prepare(models, x, y, lr, lrs, fit_kwargs)
    stack = StackedMLP(models).to(run.device)
    params = list(stack.parameters()) + extra_params
    # Adam's step is lr times a direction that does not depend on lr: members with their own lr
    # take the step of lr = 1 and keep the share lr[k] of it (see _step).
    optimizer = adam_with_zero_grads(params, run, fused=True)
    lr_k = None if lrs is None else torch.tensor(lrs, dtype=stack.weight[0].dtype, device=run.device)
    use_fast = fast and extra_loss is None and _fastpath.handles(run.recipe)
    streams = [generators_for(s) for s in seeds]  # (shuffle, mixing) per member, as in fit
    histories = [History() for _ in models]
    n = xs.shape[1]
    bar = tqdm(range(1, run.epochs + 1), desc=f"{run.recipe.method} x{size}", disable=not run.show, leave=False)
    for epoch in bar:
        orders = torch.stack([torch.randperm(n, generator=shuffle) for shuffle, _ in streams]).to(run.device)
        totals = []
        for start in range(0, n, run.batch_size):
            index = orders[:, start : start + run.batch_size]  # (K, B): each member's rows
            draws = [draw(run.recipe, index.shape[1], mixing) for _, mixing in streams]
            xb, yb = _rows(xs, index), _rows(ys, index)
            if use_fast:
                losses = _fastpath.losses_and_gradients(stack, xb, yb, run.recipe, draws)
            else:
                losses = member_losses(stack, xb, yb, run.recipe, draws)
                if extra_loss is not None:
                    losses = losses + extra_loss(stack, xb, yb, index)
                optimizer.zero_grad(set_to_none=False)
                losses.sum().backward()
            _step(optimizer, params, lr_k)
            totals.append(losses.detach() * index.shape[1])
        if epoch % run.eval_every == 0 or epoch == run.epochs:
            total = (torch.stack(totals).double().sum(0) / n).tolist()
            with torch.no_grad():
                train = score(stack(xs), ys).tolist()
                test = score(stack(x_test), y_test).tolist() if x_test is not None else [None] * size
            for k, history in enumerate(histories):
                history.record(epoch, total[k], train[k], test[k])
            if monitor is not None:
                with torch.no_grad():
                    monitor(epoch, stack)
    bar.close()
    for k, model in enumerate(models):
        stack.write_back_one(k, model)
        model.eval()
    return histories


def _rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[k, index[k]]`` for every member: ``t`` is ``(K, n, ...)``, ``index`` ``(K, B)``."""
    if t.stride(0) == 0:  # one data set shared by all members: one index_select on its rows
        return t[0].index_select(0, index.reshape(-1)).reshape(*index.shape, *t.shape[2:])
    return t[torch.arange(len(t), device=t.device).unsqueeze(1), index]


def _step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], lr_k: torch.Tensor | None) -> None:
    if lr_k is None:
        optimizer.step()
        return
    before = [p.detach().clone() for p in params]
    optimizer.step()  # at lr 1: p - u
    with torch.no_grad():
        for p, b in zip(params, before, strict=True):
            p.copy_(torch.lerp(b, p, lr_k.reshape(-1, *[1] * (p.dim() - 1))))  # b - lr[k] u


def _check_models(models: object) -> list[nn.Module]:
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
    return models


def _check_lrs(lr: object, size: int) -> list[float] | None:
    """``None`` for one learning rate (checked by prepare_run), else one checked rate per member."""
    if isinstance(lr, (str, bytes)) or not isinstance(lr, Iterable):
        return None
    lrs = list(lr)
    if len(lrs) != size:
        raise ValueError(f"lr must be one number or one per model ({size}), got {len(lrs)}")
    return [check_positive("lr[k]", v) for v in lrs]


def _prepare(models: list[nn.Module], x: object, y: object, lr: object, lrs: list[float] | None,
             fit_kwargs: dict) -> tuple[Run, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Check the data once per member draw; return it as ``(K, n, ...)`` (shared data is not copied)."""
    size = len(models)
    kwargs = dict(fit_kwargs, lr=1.0 if lrs is not None else lr)
    per_member = isinstance(x, torch.Tensor) and x.dim() == 3 and len(x) == size
    if not per_member:
        run = prepare_run(models[0], x, y, **kwargs)
        if run.x.dim() != 2:
            raise ValueError(f"fit_ensemble needs x of shape (n, features), got {tuple(run.x.shape)}; use mixlib.fit")
        runs = [run]
    else:
        if not isinstance(y, torch.Tensor) or y.dim() != 2 or len(y) != size:
            raise ValueError(f"with x of shape (K, n, d), one data draw per model, y must be (K, n) with K = {size}")
        x_test, y_test = kwargs.pop("x_test", None), kwargs.pop("y_test", None)
        runs = [prepare_run(models[0], x[k], y[k], x_test=None if x_test is None else x_test[k],
                            y_test=None if y_test is None else y_test[k], **kwargs) for k in range(size)]
    for model in models[1:]:
        model.to(runs[0].device)

    def stacked(name: str) -> torch.Tensor | None:
        values = [getattr(r, name) for r in runs]
        if values[0] is None:
            return None
        return torch.stack(values) if per_member else values[0].expand(size, *values[0].shape)

    return runs[0], stacked("x"), stacked("y"), stacked("x_test"), stacked("y_test")
