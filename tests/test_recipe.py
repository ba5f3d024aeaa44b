"""The official loss, the loss options of fit, label noise, few labels, NLL/ECE and paired statistics."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

import mixlib
from mixlib import metrics
from mixlib.data import corrupt_labels
from mixlib.experiments import compare_methods
from mixlib.mixing import bce_on_softmax, mixed_cross_entropy, mixup, one_hot
from mixlib.recipe import draw, make_recipe, recipe_loss, terms_loss
from mixlib.stats import paired_difference
from mixlib.train import fit, mixed_loss


def test_bce_on_softmax_is_the_official_loss_and_linear_in_the_target():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    q1, q2 = one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4), one_hot(torch.tensor([3, 3, 0, 1, 2, 2]), 4)
    target = 0.3 * q1 + 0.7 * q2
    official = nn.BCELoss()(torch.softmax(logits, 1), target)
    ours = bce_on_softmax(logits, target)
    assert torch.allclose(ours, official)
    g1, = torch.autograd.grad(official, logits)
    g2, = torch.autograd.grad(bce_on_softmax(logits, target), logits)
    assert torch.allclose(g1, g2)
    # linear in the target, like cross-entropy; but not equal to it
    assert torch.allclose(ours, 0.3 * bce_on_softmax(logits, q1) + 0.7 * bce_on_softmax(logits, q2))
    assert not torch.allclose(ours, mixed_cross_entropy(logits, q1.argmax(1), q2.argmax(1), 0.3))
    per = bce_on_softmax(logits, target, reduction="none")
    assert per.shape == (6,) and torch.allclose(per.mean(), ours)
    assert torch.allclose(per.sum(), bce_on_softmax(logits, target, "sum"))
    with pytest.raises(ValueError, match="target"):
        bce_on_softmax(logits, target * 2)
    with pytest.raises(ValueError, match="target"):
        bce_on_softmax(logits, target[:, :3])


def test_lam_shaped_b_by_1_as_timm_returns_it():
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    lam = torch.rand(5)
    perm = torch.tensor([4, 3, 2, 1, 0])
    a = mixup(x, y, lam, perm)
    b = mixup(x, y, lam.reshape(5, 1), perm)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="lam"):
        mixup(x, y, torch.rand(5, 2), perm)


def test_fit_losses_targets_and_smoothing():
    mixlib.seed_everything(0)
    model = mixlib.mlp(2, 8, 3)
    x, y = torch.randn(10, 2), torch.randint(0, 3, (10,))
    out = model(x)
    t = one_hot(y, 3)
    assert torch.allclose(mixed_loss(model, x, y, method="erm", alpha=1.0, loss="bce"), nn.BCELoss()(out.softmax(1), t))
    assert torch.allclose(mixed_loss(model, x, y, method="erm", alpha=1.0, loss="mse"),
                          0.5 * ((out - t) ** 2).sum(1).mean())
    smooth = mixed_loss(model, x, y, method="erm", alpha=1.0, label_smoothing=0.1)
    assert torch.allclose(smooth, nn.functional.cross_entropy(out, y, label_smoothing=0.1))


def test_terms_add_up_and_mean_is_the_average_over_pairings():
    torch.manual_seed(0)
    out, target = torch.randn(6, 3), torch.randn(6, 3)
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    lam = 0.3

    def rows(t):
        return t[perm]

    full = 0.5 * ((lam * (target - out) + (1 - lam) * (target - out)[perm]) ** 2).sum(1).mean()
    parts = [terms_loss(out, target, lam, rows, k, None) for k in ("all", "ordinary", "cross")]
    assert torch.allclose(parts[0], full) and torch.allclose(parts[1] + parts[2], full)
    # "mean": the cross term averaged over all permutations (a derangement-free average) of 3 examples
    e = target - out
    mean_cross = lam * (1 - lam) * e.mean(0).pow(2).sum()
    assert torch.allclose(terms_loss(out, target, lam, rows, "mean", None), parts[1] + mean_cross)
    # "noise": over the draws, each xi_i has covariance twice the batch covariance of the residuals
    g = torch.Generator().manual_seed(0)
    e = torch.randn(50, 2) @ torch.tensor([[1.0, 0.5], [0.0, 2.0]])
    centred = e - e.mean(0)
    xi = torch.stack([math.sqrt(2 / 50) * torch.randn(50, 50, generator=g) @ centred for _ in range(400)])
    xi = (xi - xi.mean(1, keepdim=True)) * math.sqrt(50 / 49)  # as terms_loss: no noise on the batch sum
    assert torch.allclose(xi.sum(1), torch.zeros(400, 2), atol=1e-4)
    second_moment = torch.einsum("dbi,dbj->ij", xi, xi) / (400 * 50)
    assert torch.allclose(second_moment, 2 * centred.T @ centred / 50, rtol=0.1, atol=0.05)
    # the loss's gradient on the outputs: its noise part sums to zero over the batch, like the real cross terms
    out = torch.zeros(6, 3, requires_grad=True)
    noisy = terms_loss(out, target, lam, rows, "noise", torch.randn(6, 6, generator=g))
    mean = terms_loss(out, target, lam, rows, "mean", None)
    (g_noise,), (g_mean,) = torch.autograd.grad(noisy, out), torch.autograd.grad(mean, out)
    assert torch.allclose((g_noise - g_mean).sum(0), torch.zeros(3), atol=1e-6)
    assert not torch.allclose(g_noise, g_mean)


def test_target_only_mixing_sees_the_unmixed_batch_against_the_mixed_targets():
    mixlib.seed_everything(0)
    model = mixlib.mlp(2, [8], 3)
    x, y = torch.randn(10, 2), torch.randint(0, 3, (10,))
    target_only = make_recipe(model, method="target", alpha=1.0, num_classes=3)
    input_mixup = make_recipe(model, method="input", alpha=1.0, num_classes=3)
    # the draws of input mixup at the same generator state: one lam and one pairing per mini-batch
    choice = draw(target_only, 10, torch.Generator().manual_seed(7))
    same = draw(input_mixup, 10, torch.Generator().manual_seed(7))
    assert choice.lam == same.lam and torch.equal(choice.perm, same.perm)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    loss = recipe_loss(model, x, y, target_only, choice)
    assert len(seen) == 1 and torch.equal(seen[0], x)  # one forward pass, on the unmixed inputs
    out, lam, perm = model(x), choice.lam, choice.perm
    expected = lam * nn.functional.cross_entropy(out, y) + (1 - lam) * nn.functional.cross_entropy(out, y[perm])
    assert torch.allclose(loss, expected)
    # and so it is neither ERM's loss nor input mixup's
    assert not torch.allclose(loss, nn.functional.cross_entropy(out, y))
    assert not torch.allclose(loss, recipe_loss(model, x, y, input_mixup, same))
    # the other losses take the same mixed targets
    mse = recipe_loss(model, x, y, make_recipe(model, method="target", loss="mse", num_classes=3), choice)
    soft = lam * one_hot(y, 3) + (1 - lam) * one_hot(y[perm], 3)
    assert torch.allclose(mse, 0.5 * ((out - soft) ** 2).sum(1).mean())


def test_recipe_rejects_inconsistent_options():
    model = mixlib.mlp(2, [4, 4], 3)
    with pytest.raises(ValueError, match="terms"):
        make_recipe(model, method="manifold", loss="ce", layers=(2,), terms="cross", num_classes=3)
    with pytest.raises(ValueError, match="terms"):
        make_recipe(model, method="manifold", loss="mse", terms="cross", num_classes=3)
    with pytest.raises(ValueError, match="layers"):
        make_recipe(model, method="manifold", layers=(5,), num_classes=3)
    with pytest.raises(ValueError, match="layers"):
        make_recipe(model, method="input", layers=(1,), num_classes=3)
    with pytest.raises(ValueError, match="block_grad"):
        make_recipe(model, method="erm", block_grad=True, num_classes=3)
    with pytest.raises(ValueError, match="layers is for method='manifold'; method='target' mixes only the targets"):
        make_recipe(model, method="target", alpha=1.0, layers=(1,), num_classes=3)
    with pytest.raises(ValueError, match="interpolate is for method='input'"):
        make_recipe(model, method="target", alpha=1.0, interpolate=lambda a, b, lam: a, num_classes=3)
    with pytest.raises(ValueError, match="alpha"):
        make_recipe(model, method="target", alpha=0.0, num_classes=3)
    with pytest.raises(ValueError, match="loss"):
        make_recipe(model, loss="hinge", num_classes=3)
    with pytest.raises(ValueError, match="loss"):
        make_recipe(model, loss="ce", num_classes=None)
    with pytest.raises(ValueError, match="label_smoothing"):
        make_recipe(model, label_smoothing=1.0, num_classes=3)


def test_fit_checks_data_before_training():
    data = mixlib.two_moons(n=40, seed=0)
    model = mixlib.mlp(2, 4, 2)
    cases = [
        (dict(y=data.y_train.reshape(-1, 1)), "y must hold one class label"),
        (dict(y=data.y_train + 5), r"y must hold class labels in \[0, 1\]"),
        (dict(y=one_hot(data.y_train, 2)), "integer class labels"),
        (dict(x=data.x_train.double()), "x has dtype torch.float64"),
        (dict(x=data.x_train[:0], y=data.y_train[:0]), "at least one example"),
        (dict(x_test=data.x_test, y_test=data.y_test - 1), "y_test"),
        (dict(x_test=data.x_test[:, :1], y_test=data.y_test), "x_test"),
        (dict(seed=-1), "seed"),
    ]
    for change, message in cases:
        kwargs = dict(x=data.x_train, y=data.y_train, epochs=1, progress=False) | change
        with pytest.raises((TypeError, ValueError), match=message):
            fit(model, **kwargs)


def test_corrupt_labels_is_symmetric_exact_and_leaves_the_test_set_alone():
    clean = mixlib.digits(seed=0)
    noisy = corrupt_labels(clean, 0.4, seed=1)
    wrong = noisy.y_train != clean.y_train
    assert wrong.sum().item() == round(0.4 * len(clean.y_train))
    assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.x_train, clean.x_train)
    # the new labels are spread over the other classes: no class takes more than a fair share
    moved = (noisy.y_train[wrong] - clean.y_train[wrong]) % 10
    counts = torch.bincount(moved, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.5 * counts[1:].float().mean()
    assert torch.equal(corrupt_labels(clean, 0.4, seed=1).y_train, noisy.y_train)
    assert not torch.equal(corrupt_labels(clean, 0.4, seed=2).y_train, noisy.y_train)
    assert torch.equal(corrupt_labels(clean, 0.0, seed=1).y_train, clean.y_train)
    for bad in (-0.1, 1.0, "0.4", True):
        with pytest.raises(ValueError, match="fraction"):
            corrupt_labels(clean, bad, seed=0)
    with pytest.raises(ValueError, match="classification"):
        corrupt_labels(mixlib.regression_1d(), 0.1)


def test_digits_few_labels_per_class():
    few = mixlib.digits(seed=3, per_class=7)
    assert torch.equal(torch.bincount(few.y_train), torch.full((10,), 7))
    assert len(few.y_test) == len(mixlib.digits(seed=3).y_test)
    with pytest.raises(ValueError, match="per_class"):
        mixlib.digits(per_class=10_000)


def test_nll_and_ece_against_direct_formulas():
    torch.manual_seed(0)
    logits, labels = torch.randn(200, 4), torch.randint(0, 4, (200,))
    assert metrics.nll(logits, labels) == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-6)
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    ece = 0.0
    for lo in torch.linspace(0, 1, 16)[:-1]:
        inside = (conf > lo) & (conf <= lo + 1 / 15)
        if inside.any():
            ece += inside.float().mean() * ((pred[inside] == labels[inside]).float().mean() - conf[inside].mean()).abs()
    assert metrics.ece(probs, labels) == pytest.approx(float(ece), abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        metrics.nll(logits, labels.reshape(-1, 1))
    with pytest.raises(ValueError, match="labels"):
        metrics.nll(logits, labels + 4)
    with pytest.raises(ValueError, match="probs"):
        metrics.ece(logits, labels)


def test_accuracy_rejects_labels_that_would_broadcast():
    mixlib.seed_everything(0)
    model = mixlib.mlp(2, 4, 3)
    x, y = torch.randn(9, 2), torch.randint(0, 3, (9,))
    assert 0 <= metrics.accuracy(model, x, y) <= 1
    with pytest.raises(ValueError, match="y"):
        metrics.accuracy(model, x, y.reshape(-1, 1))
    with pytest.raises(ValueError, match="y"):
        metrics.accuracy(model, x, torch.full((9,), -1))


def test_paired_difference_is_a_paired_t_interval():
    a = [0.80, 0.82, 0.79, 0.85, 0.81]
    b = [0.75, 0.80, 0.74, 0.80, 0.78]
    d = [u - v for u, v in zip(a, b, strict=True)]
    stat = paired_difference(a, b)
    res = stats.ttest_rel(a, b)
    low, high = res.confidence_interval(0.95)
    assert stat.mean == pytest.approx(sum(d) / 5)
    assert stat.mean - stat.ci95 == pytest.approx(low) and stat.mean + stat.ci95 == pytest.approx(high)
    with pytest.raises(ValueError, match="one number per seed"):
        paired_difference(a, b[:3])


def test_comparison_paired_table_pairs_by_seed():
    data = mixlib.two_moons(n=60, seed=0)
    result = compare_methods(lambda: mixlib.mlp(2, [8], 2), data, seeds=[0, 1, 2], epochs=2, batch_size=20)
    diffs = result.paired("ERM", "test_accuracy")
    assert set(diffs) == {"input mixup", "manifold mixup"}
    for name, stat in diffs.items():
        mine, base = result.values(name, "test_accuracy"), result.values("ERM", "test_accuracy")
        expected = [u - v for u, v in zip(mine, base, strict=True)]
        assert stat.mean == pytest.approx(sum(expected) / 3)
    text = result.paired_table("ERM", ["test_accuracy", "test_nll"])
    assert "3 paired seeds" in text and "Δ test_nll" in text
    with pytest.raises(ValueError, match="method"):
        result.paired("nope", "test_accuracy")


def test_ensemble_and_sequential_compare_methods_agree():
    data = mixlib.two_moons(n=60, seed=0)
    kwargs = dict(seeds=[0, 1], epochs=2, batch_size=20)
    fast = compare_methods(lambda: mixlib.mlp(2, [8], 2), data, **kwargs)
    slow = compare_methods(lambda: mixlib.mlp(2, [8], 2), data, vectorize=False, **kwargs)
    for r1, r2 in zip(fast.rows, slow.rows, strict=True):
        assert r1["method"] == r2["method"] and r1["seed"] == r2["seed"]
        assert r1["test_accuracy"] == pytest.approx(r2["test_accuracy"], abs=1 / len(data.y_test) + 1e-9)
        assert r1["test_nll"] == pytest.approx(r2["test_nll"], rel=1e-4)


def test_temperature_for_confidence_matches_the_target_and_keeps_predictions():
    torch.manual_seed(0)
    logits = 3 * torch.randn(200, 5)
    for target in (0.3, 0.6, 0.95):
        t = metrics.temperature_for_confidence(logits, target)
        assert metrics.mean_confidence(logits, t) == pytest.approx(target, abs=1e-5)
        assert torch.equal((logits / t).argmax(1), logits.argmax(1))
    with pytest.raises(ValueError, match="confidence"):
        metrics.temperature_for_confidence(logits, 0.1)  # below 1/C
    with pytest.raises(ValueError, match="logits"):
        metrics.temperature_for_confidence(logits[:, :1], 0.5)


def test_methods_with_one_seed_see_the_same_mini_batches_in_every_epoch():
    data = mixlib.two_moons(n=60, seed=0)
    seen = {}
    for method in ("erm", "input", "manifold"):
        batches = []

        def loss_fn(model, x, y, generator, batches=batches, method=method):
            batches.append(x.clone())
            return mixed_loss(model, x, y, method=method, alpha=1.0, generator=generator)

        mixlib.seed_everything(0)
        fit(mixlib.mlp(2, [4], 2), data.x_train, data.y_train, epochs=3, batch_size=8, seed=5, loss_fn=loss_fn)
        seen[method] = torch.cat(batches)
    assert torch.equal(seen["erm"], seen["input"]) and torch.equal(seen["erm"], seen["manifold"])
