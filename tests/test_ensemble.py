"""mixlib.ensemble: K seeds trained as one vectorised model equal K separate fit calls."""

from __future__ import annotations

import pytest
import torch

import mixlib
from mixlib.data import corrupt_labels
from mixlib.ensemble import _losses_and_gradients, _Stack, fit_ensemble, stackable
from mixlib.train import draw, fit, make_recipe, recipe_loss

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
    {"method": "manifold", "alpha": 2.0, "weight_decay": 1e-4, "batch_size": 50},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_each_member_equals_its_own_fit_call(data, config):
    # The cross terms alone are unbounded below: training runs away, and rounding differences
    # between batched and single matrix products grow with it. One epoch keeps them small.
    common = dict(epochs=1 if config.get("terms") == "cross" else 2, x_test=data.x_test, y_test=data.y_test,
                  progress=False, eval_every=1)
    alone = [_build(s) for s in SEEDS]
    h_alone = [fit(m, data.x_train, data.y_train, seed=s, **common, **config)
               for m, s in zip(alone, SEEDS, strict=True)]
    together = [_build(s) for s in SEEDS]
    h_together = fit_ensemble(together, data.x_train, data.y_train, seeds=list(SEEDS), **common, **config)
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
    stack = _Stack(models)
    for p in stack.parameters():
        p.grad = torch.full_like(p, float("nan"))  # every entry must be overwritten
    losses = _losses_and_gradients(stack, x, y, recipe, draws)
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
    with pytest.raises(ValueError, match="seeds"):
        fit_ensemble([_build(0), _build(1)], x, y, seeds=[0])
    with pytest.raises(ValueError, match="seed"):
        fit_ensemble([_build(0), _build(1)], x, y, seeds=[0, -1])
    with pytest.raises(ValueError, match="loss_fn"):
        fit_ensemble([_build(0)], x, y, seeds=[0], loss_fn=lambda *a: 0)
    model = _build(0)
    with pytest.raises(ValueError, match="distinct"):
        fit_ensemble([model, model], x, y, seeds=[0, 1])
