"""mixlib.ensemble: K seeds trained as one vectorised model equal K separate fit calls."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import mixlib
from mixlib._fastpath import losses_and_gradients
from mixlib.data import corrupt_labels
from mixlib.ensemble import StackedMLP, fit_ensemble, member_losses, stackable
from mixlib.recipe import draw, make_recipe, recipe_loss
from mixlib.train import fit

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def data():
    return corrupt_labels(mixlib.digits(test_size=0.5, seed=0), 0.4, seed=0)


def _build(seed, hidden=(32, 32), **kwargs):
    mixlib.seed_everything(seed)
    return mixlib.mlp(64, list(hidden), 10, **kwargs)


CONFIGS = [
    {"method": "erm"},
    {"method": "erm", "loss": "bce", "label_smoothing": 0.1},
    {"method": "input", "alpha": 1.0},
    {"method": "manifold", "alpha": 2.0},
    {"method": "manifold", "alpha": 2.0, "loss": "bce"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (1,)},
    {"method": "manifold", "alpha": 2.0, "block_grad": True},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "ordinary"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "cross"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "mean"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "noise"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "expected"},
    {"method": "manifold", "alpha": 2.0, "loss": "mse", "layers": (2,), "terms": "fluctuation"},
    {"method": "manifold", "alpha": 2.0, "targets": "own"},
    {"method": "manifold", "alpha": 2.0, "layers": (2,), "targets": "dominant"},
    {"method": "input", "alpha": 1.0, "targets": "dominant", "loss": "mse"},
    {"method": "manifold", "alpha": 2.0, "weight_decay": 1e-4, "batch_size": 50},
    {"method": "target", "alpha": 1.0},
    {"method": "target", "alpha": 0.4, "loss": "mse", "label_smoothing": 0.1},
]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "autograd"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_each_member_equals_its_own_fit_call(data, config, fast):
    # The cross terms alone are unbounded below: training runs away, and rounding differences
    # between batched and single matrix products grow with it. One epoch keeps them small.
    common = dict(epochs=1 if config.get("terms") == "cross" else 2, x_test=data.x_test, y_test=data.y_test,
                  progress=False, eval_every=1, lr=3e-3)
    alone = [_build(s) for s in SEEDS]
    h_alone = [fit(m, data.x_train, data.y_train, seed=s, **common, **config)
               for m, s in zip(alone, SEEDS, strict=True)]
    together = [_build(s) for s in SEEDS]
    h_together = fit_ensemble(together, data.x_train, data.y_train, seeds=list(SEEDS), fast=fast, **common, **config)
    for a, b, ha, hb in zip(alone, together, h_alone, h_together, strict=True):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            atol = 2e-4 if config.get("terms") == "cross" else 2e-5
            assert torch.allclose(p, q, atol=atol, rtol=1e-4), f"{name} differs by {(p - q).abs().max():.2e}"
        assert ha.epoch == hb.epoch
        assert ha.loss == pytest.approx(hb.loss, rel=1e-4, abs=1e-6)
        assert ha.train_metric == pytest.approx(hb.train_metric, abs=2 / len(data.y_train))
        assert ha.test_metric == pytest.approx(hb.test_metric, abs=2 / len(data.y_test))
    # members differ from each other: each has its own weights, batches and draws
    assert not torch.allclose(together[0].head.weight, together[1].head.weight)


TANH_CONFIGS = [
    {"method": "manifold", "alpha": 0.5, "block_grad": True},
    {"method": "input", "alpha": 1.0, "loss": "mse"},
]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("config", CONFIGS + TANH_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_one_step_gradients_equal_autograd_on_each_model(data, config, activation):
    # The ensemble's backward pass is written by hand: one step's gradients must be autograd's
    # gradients of each member's own loss (recipe_loss, what fit differentiates), member by member.
    config = {k: v for k, v in config.items() if k not in ("weight_decay", "batch_size")}
    models = [_build(s, activation=activation) for s in SEEDS]
    recipe = make_recipe(models[0], num_classes=10, **config)
    batch = 16
    streams = [torch.Generator().manual_seed(100 + s) for s in SEEDS]
    draws = [draw(recipe, batch, g) for g in streams]
    if recipe.method == "manifold" and recipe.terms == "all":
        assert len({d.layer for d in draws}) > 1 or len(recipe.layers) == 1  # members mix at different layers
    index = torch.stack([torch.randperm(len(data.y_train), generator=g)[:batch] for g in streams])
    x, y = data.x_train[index], data.y_train[index]
    stack = StackedMLP(models)
    for p in stack.parameters():
        p.grad = torch.full_like(p, float("nan"))  # every entry must be overwritten
    losses = losses_and_gradients(stack, x, y, recipe, draws)
    # the plain path, by autograd on the stack, gives the same losses and gradients
    plain = StackedMLP(models)
    plain_losses = member_losses(plain, x, y, recipe, draws)
    plain_losses.sum().backward()
    torch.testing.assert_close(plain_losses.detach(), losses, rtol=1e-5, atol=1e-7, check_dtype=False)
    for fast_p, plain_p in zip(stack.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(plain_p.grad, fast_p.grad, rtol=1e-4, atol=1e-6)
    for k, model in enumerate(models):
        loss = recipe_loss(model, x[k], y[k], recipe, draws[k])
        assert losses[k].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-7)
        model.zero_grad(set_to_none=False)
        loss.backward()
        linears = [block[0] for block in model.blocks] + [model.head]
        for i, linear in enumerate(linears):
            expected_w = torch.zeros_like(linear.weight) if linear.weight.grad is None else linear.weight.grad
            expected_b = torch.zeros_like(linear.bias) if linear.bias.grad is None else linear.bias.grad
            torch.testing.assert_close(stack.weight[i].grad[k].T, expected_w, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(stack.bias[i].grad[k, 0], expected_b, rtol=1e-4, atol=1e-6)


def test_terms_all_is_manifold_mixup_at_the_last_layer(data):
    last = dict(method="manifold", alpha=2.0, loss="mse", layers=(2,), epochs=2, progress=False)
    a, b = _build(0), _build(0)
    fit(a, data.x_train, data.y_train, seed=3, **last)
    fit(b, data.x_train, data.y_train, seed=3, terms="all", **last)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_ensemble_of_tanh_nets_and_regression():
    reg = mixlib.regression_1d(n=80, seed=0)

    def build(seed):
        mixlib.seed_everything(seed)
        return mixlib.mlp(1, [16], 1, activation="tanh")

    alone = [build(s) for s in SEEDS]
    for m, s in zip(alone, SEEDS, strict=True):
        fit(m, reg.x_train, reg.y_train, seed=s, method="input", alpha=1.0, epochs=3, batch_size=16, progress=False)
    together = [build(s) for s in SEEDS]
    fit_ensemble(together, reg.x_train, reg.y_train, seeds=list(SEEDS), method="input", alpha=1.0, epochs=3,
                 batch_size=16, progress=False)
    for a, b in zip(alone, together, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)


def test_stackable_and_bad_arguments(data):
    assert stackable(_build(0))
    assert not stackable(torch.nn.Linear(64, 10))
    x, y = data.x_train, data.y_train
    with pytest.raises(TypeError, match="models"):
        fit_ensemble([], x, y, seeds=[])
    with pytest.raises(TypeError, match=r"models\[1\]"):
        fit_ensemble([_build(0), torch.nn.Linear(64, 10)], x, y, seeds=[0, 1])
    with pytest.raises(ValueError, match="architecture"):
        fit_ensemble([_build(0), _build(1, hidden=(32, 16))], x, y, seeds=[0, 1])
    with pytest.raises(ValueError, match="dtype"):
        fit_ensemble([_build(0), _build(1).double()], x, y, seeds=[0, 1])
    reg = mixlib.regression_1d(n=20, seed=0)  # fit takes (n, 1, d) inputs here; the stack does not
    with pytest.raises(ValueError, match=r"x of shape \(n, features\)"):
        fit_ensemble([mixlib.mlp(1, [4], 1), mixlib.mlp(1, [4], 1)], reg.x_train.unsqueeze(1), reg.y_train,
                     seeds=[0, 1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="seeds"):
        fit_ensemble([_build(0), _build(1)], x, y, seeds=[0])
    with pytest.raises(ValueError, match="seed"):
        fit_ensemble([_build(0), _build(1)], x, y, seeds=[0, -1])
    with pytest.raises(ValueError, match="loss_fn"):
        fit_ensemble([_build(0)], x, y, seeds=[0], loss_fn=lambda *a: 0)
    model = _build(0)
    with pytest.raises(ValueError, match="distinct"):
        fit_ensemble([model, model], x, y, seeds=[0, 1])


def test_models_the_stack_would_get_wrong_are_not_stackable():
    # The stacked model computes Linear -> activation blocks from the raw weights and trains every
    # weight: anything that changes that must be refused (and trained by fit instead).
    frozen = _build(0)
    frozen.blocks[0][0].weight.requires_grad_(False)

    class Louder(mixlib.manifold.StagedNet):
        def forward(self, x):
            return 2 * super().forward(x)

    plain = _build(0)
    subclass = Louder(plain.blocks, plain.head, eligible_layers=plain.eligible_layers)
    normed = _build(0)
    torch.nn.utils.parametrizations.weight_norm(normed.head)
    hooked = _build(0)
    hooked.blocks[1].register_forward_hook(lambda module, inputs, output: output * 0)
    for model in (frozen, subclass, normed, hooked):
        assert not stackable(model)
    assert stackable(_build(0))


def test_regression_targets_shaped_n_by_1():
    reg = mixlib.regression_1d(n=40, seed=0)
    y, y_test = reg.y_train.reshape(-1, 1), reg.y_test.reshape(-1, 1)

    def build(seed):
        mixlib.seed_everything(seed)
        return mixlib.mlp(1, [8], 1)

    kwargs = dict(method="manifold", alpha=1.0, epochs=2, batch_size=16, progress=False, x_test=reg.x_test,
                  y_test=y_test)
    alone = [fit(build(s), reg.x_train, y, seed=s, **kwargs) for s in SEEDS]
    together = fit_ensemble([build(s) for s in SEEDS], reg.x_train, y, seeds=list(SEEDS), **kwargs)
    for a, b in zip(alone, together, strict=True):
        assert a.train_metric == pytest.approx(b.train_metric, rel=1e-4)
        assert a.test_metric == pytest.approx(b.test_metric, rel=1e-4)


def test_lambda_next_to_one_keeps_its_cross_terms(data):
    # fit weighs the terms with lambda in double precision; a float32 lambda of 1 - 1e-9 is 1,
    # which would zero lambda * (1 - lambda) and with it the whole cross-term gradient.
    models = [_build(s) for s in SEEDS]
    recipe = make_recipe(models[0], num_classes=10, method="manifold", alpha=2.0, loss="mse", layers=(2,),
                         terms="cross")
    draws = [dataclasses.replace(draw(recipe, 8, torch.Generator().manual_seed(s)), lam=1 - 1e-9) for s in SEEDS]
    x, y = data.x_train[:24].reshape(3, 8, -1), data.y_train[:24].reshape(3, 8)
    stack = StackedMLP(models)
    for p in stack.parameters():
        p.grad = torch.zeros_like(p)
    losses_and_gradients(stack, x, y, recipe, draws)
    for k, model in enumerate(models):
        recipe_loss(model, x[k], y[k], recipe, draws[k]).backward()
        assert model.head.weight.grad.abs().max() > 0
        torch.testing.assert_close(stack.weight[-1].grad[k].T, model.head.weight.grad, rtol=1e-3, atol=0)


# --- members that differ in more than their seed ------------------------------------------------


def _assert_same_models(alone, together, atol=2e-5):
    for a, b in zip(alone, together, strict=True):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.allclose(p, q, atol=atol, rtol=1e-4), f"{name} differs by {(p - q).abs().max():.2e}"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "autograd"])
def test_each_member_keeps_its_own_learning_rate(data, fast):
    lrs = [3e-4, 1e-3, 3e-3]
    config = dict(method="manifold", alpha=2.0, epochs=2, progress=False, weight_decay=1e-4)
    alone = [_build(s) for s in SEEDS]
    h_alone = [fit(m, data.x_train, data.y_train, seed=s, lr=lr, **config)
               for m, s, lr in zip(alone, SEEDS, lrs, strict=True)]
    together = [_build(s) for s in SEEDS]
    h_together = fit_ensemble(together, data.x_train, data.y_train, seeds=list(SEEDS), lr=lrs, fast=fast, **config)
    _assert_same_models(alone, together)
    for ha, hb in zip(h_alone, h_together, strict=True):
        assert ha.loss == pytest.approx(hb.loss, rel=1e-4)
    with pytest.raises(ValueError, match="lr"):
        fit_ensemble([_build(0), _build(1)], data.x_train, data.y_train, seeds=[0, 1], lr=[1e-3])
    with pytest.raises(ValueError, match=r"lr\[k\]"):
        fit_ensemble([_build(0), _build(1)], data.x_train, data.y_train, seeds=[0, 1], lr=[1e-3, -1.0])


def test_each_member_trains_on_its_own_data_draw():
    draws = [corrupt_labels(mixlib.digits(test_size=0.5, seed=d), 0.4, seed=d) for d in range(3)]
    config = dict(method="input", alpha=1.0, epochs=2, progress=False, eval_every=1)
    alone = [_build(s) for s in SEEDS]
    h_alone = [fit(m, d.x_train, d.y_train, seed=s, x_test=d.x_test, y_test=d.y_test, **config)
               for m, s, d in zip(alone, SEEDS, draws, strict=True)]
    together = [_build(s) for s in SEEDS]
    names = ("x_train", "y_train", "x_test", "y_test")
    stack = {name: torch.stack([getattr(d, name) for d in draws]) for name in names}
    h_together = fit_ensemble(together, stack["x_train"], stack["y_train"], seeds=list(SEEDS),
                              x_test=stack["x_test"], y_test=stack["y_test"], **config)
    _assert_same_models(alone, together)
    for ha, hb in zip(h_alone, h_together, strict=True):
        assert ha.test_metric == pytest.approx(hb.test_metric, abs=2 / len(draws[0].y_test))
    with pytest.raises(ValueError, match=r"y must be \(K, n\)"):
        fit_ensemble([_build(s) for s in SEEDS], stack["x_train"], draws[0].y_train, seeds=list(SEEDS))


class _Shrink(torch.nn.Module):
    """An extra loss with parameters of its own: a per-member scale that pulls the features to zero."""

    def __init__(self, members):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(members, 1, 1))

    def forward(self, net, x, y, index):
        h = net.features(x)  # (K, B, width)
        return (self.scale * h).pow(2).sum(-1).mean(-1) * 1e-3 + (self.scale.reshape(-1) - 0.5).pow(2)


def test_an_extra_loss_trains_the_same_alone_and_in_an_ensemble(data):
    config = dict(method="manifold", alpha=2.0, epochs=2, progress=False)
    alone, extras = [_build(s) for s in SEEDS], [_Shrink(1) for _ in SEEDS]
    for m, s, extra in zip(alone, SEEDS, extras, strict=True):
        fit(m, data.x_train, data.y_train, seed=s, extra_loss=extra, **config)
    together, extra = [_build(s) for s in SEEDS], _Shrink(len(SEEDS))
    fit_ensemble(together, data.x_train, data.y_train, seeds=list(SEEDS), extra_loss=extra, **config)
    _assert_same_models(alone, together)
    trained = torch.cat([e.scale.detach().reshape(1) for e in extras])
    torch.testing.assert_close(extra.scale.detach().reshape(-1), trained, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(trained, torch.ones(3))  # the extra loss's own parameters were trained


def test_a_recipe_with_an_interpolator_is_input_mixup_through_it(data):
    def halfway(x, x2, lam):  # not the chord: the midpoint pushed towards 1
        return (lam * x + (1 - lam) * x2).sqrt()

    config = dict(method="input", alpha=1.0, interpolate=halfway, epochs=1, progress=False)
    alone = [_build(s) for s in SEEDS]
    for m, s in zip(alone, SEEDS, strict=True):
        fit(m, data.x_train, data.y_train, seed=s, **config)
    together = [_build(s) for s in SEEDS]
    fit_ensemble(together, data.x_train, data.y_train, seeds=list(SEEDS), **config)
    _assert_same_models(alone, together)
    linear = _build(0)
    fit(linear, data.x_train, data.y_train, seed=0, **{**config, "interpolate": None})
    assert not torch.allclose(linear.head.weight, alone[0].head.weight)
    with pytest.raises(ValueError, match="interpolate"):
        fit(_build(0), data.x_train, data.y_train, method="manifold", interpolate=halfway)


def test_stacked_mlp_members_are_the_seeded_mlps():
    stack = StackedMLP.from_seeds([0, 4], 6, [5, 4], 3)
    x = torch.randn(7, 6)
    for k, s in enumerate([0, 4]):
        mixlib.seed_everything(s)
        alone = mixlib.mlp(6, [5, 4], 3)
        torch.testing.assert_close(stack(x)[k], alone(x))
        torch.testing.assert_close(stack.member(k)(x), alone(x))
        torch.testing.assert_close(stack.features(x, 1)[k], alone.features(x, 1))


def test_the_fast_path_takes_only_the_recipes_it_writes_out():
    import mixlib._fastpath as fastpath

    base = make_recipe(_build(0), method="input", alpha=1.0, num_classes=10)
    assert fastpath.handles(base)
    assert not fastpath.handles(dataclasses.replace(base, interpolate=lambda x, x2, lam: x))
    assert not fastpath.handles(dataclasses.replace(base, method="some new method"))  # autograd path

