"""mixlib.routes: chapter 07's explicit routes to flatness, trained as losses of the one ensemble."""

from __future__ import annotations

import pytest
import torch

import mixlib
from mixlib import routes as fl
from mixlib.data import Split, corrupt_labels
from mixlib.ensemble import seeded_mlps
from mixlib.flatness import chord_deviation
from mixlib.metrics import temperature_for_nll


@pytest.fixture(scope="module")
def small_digits() -> Split:
    d = mixlib.digits(seed=0)
    return Split(d.x_train[:120], d.y_train[:120], d.x_test[:80], d.y_test[:80], 10)


# --- data ------------------------------------------------------------------------------------


def test_transformed_digits_shape_identity_and_shift(small_digits):
    x = small_digits.x_train[:5]
    out = fl.transformed_digits(x, [-10, 0, 10])
    assert out.shape == (5, 3, 64)
    assert torch.allclose(out[:, 1], x, atol=1e-6)
    assert not torch.allclose(out[:, 0], x, atol=1e-3)
    assert out.min() >= 0 and out.max() <= 1
    shifted = fl.transformed_digits(x, [1.0], kind="shift")[:, 0].reshape(5, 8, 8)
    assert torch.allclose(shifted[:, :, 1:], x.reshape(5, 8, 8)[:, :, :-1], atol=1e-6)
    assert torch.all(shifted[:, :, 0] == 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": torch.zeros(3, 10), "ts": [0]}, ValueError, "images"),
        ({"images": torch.zeros(3, 64, dtype=torch.long), "ts": [0]}, TypeError, "images"),
        ({"images": torch.zeros(3, 64), "ts": []}, ValueError, "ts"),
        ({"images": torch.zeros(3, 64), "ts": [0], "kind": "zoom"}, ValueError, "kind"),
    ],
)
def test_transformed_digits_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fl.transformed_digits(**kwargs)


# --- the routes ------------------------------------------------------------------------------


def test_interpolator_hits_both_endpoints_and_bends_in_between():
    model = fl.Interpolator([0, 1], in_dim=6, hidden=8, code=3)
    g = torch.Generator().manual_seed(2)
    x, x2 = torch.rand(2, 5, 6, generator=g), torch.rand(2, 5, 6, generator=g)
    assert torch.allclose(model(x, x2, torch.ones(2)), x, atol=1e-6)
    assert torch.allclose(model(x, x2, torch.zeros(2)), x2, atol=1e-6)
    middle = model(x, x2, torch.full((2,), 0.5))
    z, z2 = model.encoder(x), model.encoder(x2)
    bend = model.decode(0.5 * z + 0.5 * z2) - 0.5 * model.decode(z) - 0.5 * model.decode(z2)
    assert torch.allclose(middle - (0.5 * x + 0.5 * x2), bend, atol=1e-6)
    assert float(bend.detach().abs().max()) > 0
    twice = model.repeat(2)
    assert twice.size == 4
    x4, y4 = torch.cat([x, x]), torch.cat([x2, x2])
    assert torch.allclose(twice(x4, y4, torch.full((4,), 0.3)), torch.cat([model(x, x2, torch.full((2,), 0.3))] * 2))
    with pytest.raises(ValueError, match="x and x2"):
        model(x, x2[:, :3], torch.ones(2))


def test_train_interpolators_without_labels_gives_frozen_exact_endpoints(small_digits):
    model = fl.train_interpolators(small_digits.x_train, [0, 1], epochs=2, batch_size=32)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = small_digits.x_train[:4].expand(2, -1, -1)
    x2 = small_digits.x_train[4:8].expand(2, -1, -1)
    assert torch.allclose(model(x, x2, torch.ones(2)), x, atol=1e-6)
    with pytest.raises(ValueError, match="epochs"):
        fl.train_interpolators(small_digits.x_train, [0], epochs=0)


# --- losses and measures ---------------------------------------------------------------------


def test_curvature_loss_is_zero_on_a_line_scale_free_and_positive_on_a_bend():
    a, b = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 0.0, -1.0]])
    line = [a, a + b, a + 2 * b]
    assert torch.allclose(fl.curvature_loss(*line), torch.zeros(1), atol=1e-7)
    bent = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
    value = fl.curvature_loss(*bent)
    assert torch.allclose(value, torch.tensor([2.0 / 2.0]))  # miss (-1, 1): 2; steps 1 + 1
    assert torch.allclose(fl.curvature_loss(*[10 * t for t in bent]), value)
    assert fl.curvature_loss(a, a, a).item() == 0.0
    with pytest.raises(ValueError, match="one shape"):
        fl.curvature_loss(a, a, torch.zeros(1, 2))


def test_chord_deviation_zero_for_affine_features_and_scale_free():
    g = torch.Generator().manual_seed(3)
    x, x2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    w = torch.randn(4, 5, generator=g)
    assert torch.allclose(chord_deviation(lambda t: t @ w + 1.0, x, x2), torch.zeros(6), atol=1e-5)
    bent = chord_deviation(lambda t: torch.relu(t @ w), x, x2)
    assert bent.shape == (6,) and bool((bent >= 0).all()) and float(bent.max()) > 0.01
    assert torch.allclose(chord_deviation(lambda t: 7 * torch.relu(t @ w), x, x2), bent, atol=1e-5)
    with pytest.raises(ValueError, match="n_points"):
        chord_deviation(lambda t: t, x, x2, n_points=1)
    with pytest.raises(ValueError, match="x2"):
        chord_deviation(lambda t: t, x, x2[:3])


# --- training --------------------------------------------------------------------------------


def _one_member(interp, k, seed):
    alone = fl.Interpolator([seed], code=12)
    alone.load_state_dict({name: value[k:k + 1] for name, value in interp.state_dict().items()})
    return alone.requires_grad_(False).eval()


@pytest.mark.parametrize("route", fl.ROUTES)
def test_a_route_trains_the_same_alone_in_fit_or_in_an_ensemble(route, small_digits):
    """A member is its own fit run with the route's loss: same seed, same model, whatever trains beside it."""
    cfg = fl.RouteConfig(epochs=2, batch_size=32, lr=3e-3)
    extra = {"trajectories": fl.transformed_digits(small_digits.x_train, [-10, 0, 10])}
    interp = fl.train_interpolators(small_digits.x_train, [3, 5], epochs=1, batch_size=32)
    both, loss = fl.train_route(route, small_digits.x_train, small_digits.y_train, [3, 5], config=cfg,
                                hidden=(16, 16), interpolator=interp, **extra)
    assert (loss is not None) == (route in ("reconstruct", "linearize"))
    alone = seeded_mlps([5], 64, [16, 16], 10)[0]
    arm = fl.route_arm(route, [5], config=cfg, width=16, in_dim=64, interpolator=_one_member(interp, 1, 5), **extra)
    mixlib.fit(alone, small_digits.x_train, small_digits.y_train, seed=5, epochs=2, batch_size=32, lr=3e-3,
               progress=False, **arm)
    x = small_digits.x_test
    torch.testing.assert_close(both[1](x), alone(x), atol=1e-4, rtol=1e-4)
    erm = seeded_mlps([5], 64, [16, 16], 10)[0]
    mixlib.fit(erm, small_digits.x_train, small_digits.y_train, seed=5, epochs=2, batch_size=32, lr=3e-3,
               progress=False)
    assert (route == "erm") == torch.allclose(erm(x), alone(x), atol=1e-4)  # each route changes the training


def test_a_route_member_starts_from_chapter_06s_seed(small_digits):
    models, _ = fl.train_route("erm", small_digits.x_train, small_digits.y_train, [4], config=fl.RouteConfig(
        epochs=1, batch_size=32), hidden=(8,))
    mixlib.seed_everything(4)
    reference = mixlib.mlp(64, [8], 10)
    mixlib.fit(reference, small_digits.x_train, small_digits.y_train, seed=4, epochs=1, batch_size=32, lr=3e-3,
               progress=False)
    torch.testing.assert_close(models[0](small_digits.x_test), reference(small_digits.x_test), atol=1e-5, rtol=1e-4)


def test_route_arm_rejects_bad_arguments(small_digits):
    arm = dict(config=fl.RouteConfig(), width=8, in_dim=64)
    with pytest.raises(ValueError, match="route"):
        fl.route_arm("dropout", [0], **arm)
    with pytest.raises(ValueError, match="trajectories"):
        fl.route_arm("linearize", [0], **arm)
    with pytest.raises(ValueError, match="trajectories"):
        fl.route_arm("linearize", [0], trajectories=torch.zeros(10, 2, 64), **arm)
    with pytest.raises(ValueError, match="Interpolator"):
        fl.route_arm("interpolate", [0, 1], interpolator=fl.Interpolator([0]), **arm)
    with pytest.raises(TypeError, match="config"):
        fl.route_arm("erm", [0], config={"epochs": 1}, width=8, in_dim=64)
    with pytest.raises(ValueError, match="epochs"):
        fl.train_route("erm", small_digits.x_train, small_digits.y_train, [0], config=fl.RouteConfig(epochs=0))


def test_compare_routes_gives_paired_rows_per_regime(small_digits):
    noisy = corrupt_labels(small_digits, 0.4, seed=0)
    result = fl.compare_routes({"noisy": noisy, "clean": small_digits}, [0, 1],
                               {"ERM": "erm", "MM": "manifold"}, config=fl.RouteConfig(epochs=1, batch_size=32),
                               hidden=(8,), n_pairs=20)
    assert set(result) == {"noisy", "clean"}
    for comparison in result.values():
        assert comparison.methods == ["ERM", "MM"]
        assert set(comparison.metrics) == {"test_accuracy", "test_nll", "test_ece", "confidence", "nll_ts",
                                           "ece_ts", "chord", "class_dim", "train_fit"}
        assert comparison.paired("ERM", "test_accuracy")["MM"].n == 2
        for row in comparison.rows:
            assert 0 <= row["test_accuracy"] <= 1 and 0 <= row["test_ece"] <= 1 and row["class_dim"] >= 1
    # the clean runs of a seed see clean labels: they match a clean-only run
    alone = fl.compare_routes({"clean": small_digits}, [0, 1], {"ERM": "erm"},
                              config=fl.RouteConfig(epochs=1, batch_size=32), hidden=(8,), n_pairs=20)
    assert alone["clean"].values("ERM", "test_nll") == pytest.approx(result["clean"].values("ERM", "test_nll"),
                                                                     rel=1e-4)


def test_compare_routes_rejects_bad_arguments(small_digits):
    other = Split(small_digits.x_train + 1, small_digits.y_train, small_digits.x_test, small_digits.y_test, 10)
    with pytest.raises(ValueError, match="share their inputs"):
        fl.compare_routes({"a": small_digits, "b": other}, [0], {"ERM": "erm"})
    with pytest.raises(ValueError, match="routes"):
        fl.compare_routes({"a": small_digits}, [0], {"ERM": "sgd"})
    with pytest.raises(ValueError, match="n_pairs"):
        fl.compare_routes({"a": small_digits}, [0], {"ERM": "erm"}, n_pairs=1000)
    with pytest.raises(ValueError, match="regimes"):
        fl.compare_routes({}, [0], {"ERM": "erm"})


def test_measure_members_checks_its_arguments(small_digits):
    models = seeded_mlps([0], 64, [8], 10)
    rows = fl.measure_members(models, small_digits, torch.tensor([[0, 1], [2, 3]]))
    assert len(rows) == 1 and 0 < rows[0]["confidence"] <= 1
    with pytest.raises(ValueError, match="pairs"):
        fl.measure_members(models, small_digits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="train_labels"):
        fl.measure_members(models, small_digits, torch.tensor([[0, 1]]), train_labels=small_digits.y_train[:5])
    with pytest.raises(ValueError, match="n_bins"):
        fl.measure_members(models, small_digits, torch.tensor([[0, 1]]), n_bins=0)


def test_the_nll_temperature_undoes_a_rescaling_of_the_logits():
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 5, (400,), generator=g)
    logits = torch.randn(400, 5, generator=g) + 2.0 * torch.nn.functional.one_hot(labels, 5)
    base = temperature_for_nll(logits, labels)
    grid_step = 10 ** (3 / 300)  # the grid's spacing in T
    for scale in (0.3, 4.0):
        assert temperature_for_nll(scale * logits, labels) == pytest.approx(scale * base, rel=grid_step - 1)
    nll_ts, ece_ts = fl._temperature_scaled(4.0 * logits, labels, 15)
    assert nll_ts == pytest.approx(fl._temperature_scaled(logits, labels, 15)[0], rel=2e-2)
    with pytest.raises(ValueError, match="labels"):
        temperature_for_nll(logits, labels[:10])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_routes_train_and_measure_on_cuda_like_on_the_cpu(small_digits):
    cuda = Split(*(t.cuda() for t in (small_digits.x_train, small_digits.y_train, small_digits.x_test,
                                      small_digits.y_test)), 10)
    cfg = fl.RouteConfig(epochs=1, batch_size=32)
    routes = {r: r for r in fl.ROUTES}
    extra = {"trajectories": fl.transformed_digits(small_digits.x_train, [-10, 0, 10]),
             "interpolator": fl.train_interpolators(small_digits.x_train, [0, 1], epochs=1)}
    on_cpu = fl.compare_routes({"a": small_digits}, [0, 1], routes, config=cfg, hidden=(8,), n_pairs=20, **extra)
    extra_cuda = {"trajectories": extra["trajectories"].cuda(),
                  "interpolator": fl.train_interpolators(cuda.x_train, [0, 1], epochs=1)}
    on_cuda = fl.compare_routes({"a": cuda}, [0, 1], routes, config=cfg, hidden=(8,), n_pairs=20, **extra_cuda)
    for route in fl.ROUTES:
        assert on_cuda["a"].values(route, "test_nll") == pytest.approx(on_cpu["a"].values(route, "test_nll"),
                                                                        rel=1e-3)


def test_bad_arguments_get_errors_that_name_them():
    with pytest.raises(TypeError, match="features"):
        chord_deviation("relu", torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="eps"):
        fl.curvature_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), eps=-1.0)
    with pytest.raises(TypeError, match="ts"):
        fl.transformed_digits(torch.zeros(1, 64), ["a"])
    with pytest.raises(ValueError, match="ts"):
        fl.transformed_digits(torch.zeros(1, 64), [float("nan")])
    xs = torch.zeros(8, 64)
    for config, match in [(fl.RouteConfig(alpha=0.0), "alpha"), (fl.RouteConfig(weight=-1.0), "weight"),
                          (fl.RouteConfig(triples=0), "triples"), (fl.RouteConfig(decoder_hidden=0), "decoder_hidden")]:
        with pytest.raises(ValueError, match=match):
            fl.train_route("input", xs, torch.zeros(8, dtype=torch.long), [0], config=config)
    with pytest.raises(ValueError, match="consistency"):
        fl.train_interpolators(xs, [0], consistency=-1.0)


def test_chord_pairs_are_fixed_disjoint_and_checked():
    pairs = fl.chord_pairs(540, 200)
    assert pairs.shape == (200, 2) and pairs.dtype == torch.long
    assert len(torch.unique(pairs)) == 400 and int(pairs.min()) >= 0 and int(pairs.max()) < 540
    assert torch.equal(pairs, fl.chord_pairs(540, 200))
    assert not torch.equal(pairs, fl.chord_pairs(540, 200, seed=8))
    assert len(torch.unique(fl.chord_pairs(7, 3))) == 6
    with pytest.raises(ValueError, match="n_pairs"):
        fl.chord_pairs(10, 6)
    with pytest.raises(TypeError, match="n_pairs"):
        fl.chord_pairs(10, 2.0)
    with pytest.raises(ValueError, match="seed"):
        fl.chord_pairs(10, 2, seed=-1)
