"""mixlib.train and mixlib.plot: the loop learns, is deterministic, validates, and plots draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import mixlib
from mixlib import plot
from mixlib.manifold import mlp
from mixlib.train import History, fit, mixed_loss, progress_enabled


def _moons():
    return mixlib.two_moons(n=120, noise=0.1, seed=0)


@pytest.mark.parametrize("method", ["erm", "input", "manifold"])
def test_each_method_learns_two_moons_and_is_deterministic(method):
    data = _moons()
    histories, weights = [], []
    for _ in range(2):
        mixlib.seed_everything(0)
        model = mlp(2, [32, 32], 2)
        histories.append(fit(model, data.x_train, data.y_train, method=method, alpha=1.0, epochs=60,
                             batch_size=30, lr=1e-2, seed=1, x_test=data.x_test, y_test=data.y_test,
                             eval_every=20, progress=False))
        weights.append(torch.cat([p.detach().ravel() for p in model.parameters()]))
    h = histories[0]
    assert h.epoch == [20, 40, 60]
    assert h.test_metric[-1] > 0.85, f"{method} did not learn two moons: {h}"
    assert h.loss == histories[1].loss
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize(("method", "fraction"), [("erm", 0.1), ("manifold", 0.5)])
def test_regression_targets_use_squared_loss_and_report_mse(method, fraction):
    data = mixlib.regression_1d(n=200, seed=0)
    mixlib.seed_everything(0)
    model = mlp(1, [64, 64], 1, activation="tanh")
    h = fit(model, data.x_train, data.y_train, method=method, alpha=2.0, epochs=150, batch_size=50,
            lr=1e-2, seed=0, x_test=data.x_test, y_test=data.y_test, eval_every=150, progress=False)
    baseline = float(data.y_test.var(unbiased=False))  # the MSE of predicting the mean
    # mixing pulls a curved target towards its chords, so manifold mixup fits it less closely
    assert h.test_metric[-1] < fraction * baseline


def test_custom_loss_fn_replaces_the_builtin_loss():
    data = _moons()
    calls = []

    def loss_fn(model, x, y, generator):
        calls.append(x.shape[0])
        return model(x).pow(2).mean()

    mixlib.seed_everything(0)
    fit(mlp(2, 8, 2), data.x_train, data.y_train, epochs=2, batch_size=60, loss_fn=loss_fn, progress=False)
    assert calls == [60, 60]


def test_erm_loss_is_plain_cross_entropy_and_lam_one_mixing_is_erm():
    mixlib.seed_everything(0)
    model = mlp(2, 8, 3)
    x, y = torch.randn(10, 2), torch.randint(0, 3, (10,))
    erm = mixed_loss(model, x, y, method="erm", alpha=1.0)
    assert torch.allclose(erm, torch.nn.functional.cross_entropy(model(x), y))
    # alpha tiny: lam is 0 or 1 almost surely, so manifold mixup sees an unmixed (maybe permuted) batch
    g = torch.Generator().manual_seed(0)
    tiny = mixed_loss(model, x, y, method="input", alpha=1e-4, generator=g)
    per_example = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    assert tiny.item() == pytest.approx(per_example.mean().item(), rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"method": "cutmix"}, ValueError, "method"),
        ({"alpha": 0.0, "method": "input"}, ValueError, "alpha"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"x_test": torch.zeros(3, 2)}, ValueError, "x_test"),
        ({"loss_fn": 3}, TypeError, "loss_fn"),
    ],
)
def test_fit_rejects_bad_arguments_by_name(kwargs, error, name):
    data = _moons()
    with pytest.raises(error, match=name):
        fit(mlp(2, 8, 2), data.x_train, data.y_train, progress=False, **kwargs)


def test_fit_rejects_integer_inputs_and_manifold_without_stages():
    data = _moons()
    with pytest.raises(TypeError, match="x must be a floating-point"):
        fit(mlp(2, 8, 2), data.x_train.long(), data.y_train, progress=False)
    with pytest.raises(TypeError, match="StagedNet"):
        fit(torch.nn.Linear(2, 2), data.x_train, data.y_train, method="manifold", progress=False)


def test_progress_is_silent_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("MIXLIB_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.delenv("MIXLIB_PROGRESS")
    assert progress_enabled()
    assert repr(History()) == "History(empty)"


def test_plots_draw_binary_and_multiclass_boundaries_and_scatter():
    mixlib.seed_everything(0)
    fig, axes = plot.figure(ncols=4)
    data = _moons()
    plot.decision_boundary(axes[0], mlp(2, 8, 2), data.x_train, data.y_train, resolution=20, title="two")
    spirals = mixlib.spirals(n=60, num_classes=3, seed=0)
    plot.decision_boundary(axes[1], mlp(2, 8, 3), spirals.x_train, spirals.y_train, resolution=20)
    plot.representation_scatter(axes[2], torch.randn(20, 2), torch.randint(0, 2, (20,)), title="h")
    plot.singular_value_spectra(axes[3], {"a": [3.0, 2.0, 1.0], "b": torch.tensor([1.0, 0.5])})
    assert axes[0].get_title() == "two" and len(axes[3].lines) == 2
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)  # readable on a dark page
    with pytest.raises(ValueError, match="x must have 2 columns"):
        plot.decision_boundary(axes[0], mlp(3, 8, 2), torch.zeros(4, 3), torch.zeros(4).long())
    matplotlib.pyplot.close(fig)
