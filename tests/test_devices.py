"""Every public path of mixlib on a GPU, with pairings, weights and generators from the CPU.

These tests run where ``torch.cuda.is_available()`` and are skipped elsewhere (``make gpu-check``
runs them on a machine with a GPU). No other test needs a GPU.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import mixlib
from mixlib import flatness, metrics, plot
from mixlib.data import corrupt_labels
from mixlib.ensemble import fit_ensemble
from mixlib.experiments import compare_methods
from mixlib.gradients import expected_mmix_loss, gradient_terms, mmix_loss_monte_carlo
from mixlib.mixing import bce_on_softmax, mix, mixed_cross_entropy, mixed_squared_loss, mixup, one_hot

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run `make gpu-check` there)")

CUDA = torch.device("cuda")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, device=CUDA)
    y = torch.randint(0, 3, (8,), device=CUDA)
    lam_each = mixlib.sample_lambda(1.0, size=8, generator=g)  # CPU tensor, as the library makes it
    return x, y, mixlib.sample_lambda(1.0, generator=g), lam_each, mixlib.random_pairing(8, generator=g)


def test_mixing_functions_take_cpu_pairings_and_weights(batch):
    x, y, lam, lam_each, perm = batch
    for weight in (lam, lam_each, lam_each.reshape(-1, 1)):
        mx, my = mixup(x, one_hot(y.cpu(), 3).to(CUDA), weight, perm)
        assert mx.device.type == "cuda" and my.device.type == "cuda"
        assert mix(x.requires_grad_(), weight, perm).device.type == "cuda"
    logits = torch.randn(8, 3, device=CUDA)
    assert mixed_cross_entropy(logits, y, y[perm.to(CUDA)], lam_each).device.type == "cuda"
    assert mixed_squared_loss(torch.randn(8, device=CUDA), x[:, 0], x[perm.to(CUDA), 0], lam_each).isfinite()
    assert bce_on_softmax(logits, one_hot(y.cpu(), 3).to(CUDA)).isfinite()


def test_staged_net_and_mix_at_on_the_gpu(batch):
    x, _, lam, lam_each, perm = batch
    model = mixlib.mlp(5, [7, 7], 3).to(CUDA)
    for layer in model.eligible_layers:
        assert model.forward_mixed(x, layer, lam_each, perm).device.type == "cuda"
    with mixlib.mix_at(model, "blocks.0", lam, perm):
        assert model(x).device.type == "cuda"


@pytest.mark.parametrize("method", ["erm", "input", "manifold"])
def test_fit_ensemble_and_compare_on_the_gpu(method):
    data = corrupt_labels(mixlib.digits(seed=0), 0.2, seed=0)
    mixlib.seed_everything(0)
    model = mixlib.mlp(64, [16], 10).to(CUDA)
    h = fit(model, data, method)
    assert len(h.test_metric) == 1
    models = [mixlib.mlp(64, [16], 10) for _ in range(2)]
    fit_ensemble(models, data.x_train, data.y_train, seeds=[0, 1], method=method, epochs=1, device="cuda",
                 progress=False)
    assert all(p.device.type == "cuda" for m in models for p in m.parameters())
    result = compare_methods(lambda: mixlib.mlp(64, [16], 10), data, seeds=[0, 1], epochs=1, device="cuda")
    assert len(result.rows) == 6


def fit(model, data, method):
    return mixlib.fit(model, data.x_train, data.y_train, method=method, alpha=1.0, epochs=1, progress=False,
                      x_test=data.x_test, y_test=data.y_test)


def test_gradients_metrics_flatness_and_plots_on_the_gpu(batch):
    x, y, lam, lam_each, perm = batch
    features = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh()).to(CUDA)
    head = torch.nn.Linear(4, 1).to(CUDA)
    t = torch.randn(8, device=CUDA)
    terms = gradient_terms(features, head, x, x[perm.to(CUDA)], t, t[perm.to(CUDA)], lam_each)
    total = sum(terms[k] for k in ("ordinary_x", "ordinary_x2", "cross_x", "cross_x2"))
    assert torch.allclose(total, terms["autograd"], atol=1e-5)
    residuals = torch.randn(16, device=CUDA)
    assert expected_mmix_loss(residuals, 2.0) > 0
    assert mmix_loss_monte_carlo(residuals, 2.0, n_draws=10, generator=torch.Generator().manual_seed(0)) > 0
    model = mixlib.mlp(2, [8], 3).to(CUDA)
    pts = torch.randn(20, 2, device=CUDA)
    labels = torch.randint(0, 3, (20,), device=CUDA)
    probs = metrics.probabilities(model, pts)
    assert 0 <= metrics.reliability(probs, labels).ece <= 1
    assert 0 <= metrics.accuracy(model, pts, labels) <= 1
    metrics.grid(pts, resolution=5)
    h = model.features(pts)
    flatness.class_singular_values(h, labels)
    fig, axes = plot.figure(ncols=2)
    plot.decision_boundary(axes[0], model, pts, labels, resolution=10)
    plot.representation_scatter(axes[1], h[:, :2], labels)
    matplotlib.pyplot.close(fig)
