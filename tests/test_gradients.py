"""Tests for mixlib.gradients: the four-term decomposition and the expected manifold-mixup loss."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mixlib.gradients import (
    FOUR_TERM_KEYS,
    expected_mmix_loss,
    gradient_terms,
    mixing_constant,
    mmix_loss_monte_carlo,
)
from mixlib.mixing import mix, mixed_squared_loss, random_pairing, sample_lambda


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tanh_mlp(widths: list[int], activation: type[nn.Module] = nn.Tanh, scale: float = 1.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


def setup(seed: int = 0, batch: int = 7, widths: tuple[int, ...] = (3, 5, 4)):
    torch.manual_seed(seed)
    features = tanh_mlp(list(widths))
    head = nn.Linear(widths[-1], 1).double()
    x, x2 = torch.randn(batch, widths[0], dtype=torch.float64), torch.randn(batch, widths[0], dtype=torch.float64)
    y, y2 = torch.randn(batch, dtype=torch.float64), torch.randn(batch, dtype=torch.float64)
    return features, head, x, x2, y, y2


def total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(terms[k] for k in FOUR_TERM_KEYS)


# --- the contract --------------------------------------------------------------------------------


def test_keys_shapes_and_untouched_grads():
    features, head, x, x2, y, y2 = setup()
    terms = gradient_terms(features, head, x, x2, y, y2, 0.3)
    assert list(terms) == [*FOUR_TERM_KEYS, "autograd"]
    n_params = sum(p.numel() for p in features.parameters())
    assert all(v.shape == (n_params,) for v in terms.values())
    assert all(p.grad is None for p in [*features.parameters(), *head.parameters()])


def test_autograd_is_the_gradient_of_the_minimised_mixed_loss():
    features, head, x, x2, y, y2 = setup()
    lam = 0.3
    loss = 0.5 * (lam * y + (1 - lam) * y2 - head(lam * features(x) + (1 - lam) * features(x2))[:, 0]).pow(2).sum()
    loss.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in features.parameters()])
    assert torch.allclose(gradient_terms(features, head, x, x2, y, y2, lam)["autograd"], expected, atol=1e-12)


def per_example_gradients(features: nn.Module, head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """g(x_i) = d G(F(x_i)) / d theta, one row per example, by a plain loop (test only)."""
    params = list(features.parameters())
    rows = []
    for xi in x:
        out = head(features(xi[None]))[0, 0]
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
    return torch.stack(rows)


@pytest.mark.parametrize("per_example_lam", [False, True])
def test_terms_match_the_formula_with_per_example_gradients(per_example_lam):
    """Independent check: build each term from g(x_i), computed one example at a time."""
    features, head, x, x2, y, y2 = setup(seed=1)
    lam = torch.rand(7, dtype=torch.float64) if per_example_lam else 0.35
    with torch.no_grad():
        e, e2 = y - head(features(x))[:, 0], y2 - head(features(x2))[:, 0]
    g, g2 = per_example_gradients(features, head, x), per_example_gradients(features, head, x2)
    lam_col = lam[:, None] if per_example_lam else lam
    expected = {
        "ordinary_x": -(lam_col**2 * e[:, None] * g).sum(0),
        "ordinary_x2": -((1 - lam_col) ** 2 * e2[:, None] * g2).sum(0),
        "cross_x": -(lam_col * (1 - lam_col) * e2[:, None] * g).sum(0),
        "cross_x2": -(lam_col * (1 - lam_col) * e[:, None] * g2).sum(0),
    }
    terms = gradient_terms(features, head, x, x2, y, y2, lam)
    for key in FOUR_TERM_KEYS:
        assert torch.allclose(terms[key], expected[key], atol=1e-12), key
    # and the product form: -(lam e + (1-lam) e2) (lam g(x) + (1-lam) g(x2))
    product = -((lam * e + (1 - lam) * e2)[:, None] * (lam_col * g + (1 - lam_col) * g2)).sum(0)
    assert torch.allclose(terms["autograd"], product, atol=1e-12)


def test_first_layer_gradient_matches_the_closed_form_of_a_tanh_net():
    """F(x) = tanh(W x + b), G(z) = w.z + c, so dG(F(x))/dW = (w * (1 - F(x)^2)) x^T."""
    features, head, x, x2, y, y2 = setup(seed=2, widths=(3, 6))
    lam = 0.6
    W, b = features[0].weight, features[0].bias
    w, c = head.weight[0], head.bias[0]
    with torch.no_grad():
        s, s2 = torch.tanh(x @ W.T + b), torch.tanh(x2 @ W.T + b)
        e, e2 = y - (s @ w + c), y2 - (s2 @ w + c)
        delta, delta2 = w * (1 - s**2), w * (1 - s2**2)  # (B, hidden): dG/d(pre-activation)
        g_W = torch.einsum("bh,bd->bhd", delta, x)  # per-example dG/dW
        g2_W = torch.einsum("bh,bd->bhd", delta2, x2)
        r = (lam * e + (1 - lam) * e2)[:, None, None]
        by_hand = -(r * (lam * g_W + (1 - lam) * g2_W)).sum(0)
        ordinary_by_hand = -(lam**2 * e[:, None, None] * g_W).sum(0)
        cross_by_hand = -(lam * (1 - lam) * e2[:, None, None] * g_W).sum(0)
    terms = gradient_terms(features, head, x, x2, y, y2, lam)
    n = W.numel()
    assert torch.allclose(terms["autograd"][:n].reshape(W.shape), by_hand, atol=1e-12)
    assert torch.allclose(terms["ordinary_x"][:n].reshape(W.shape), ordinary_by_hand, atol=1e-12)
    assert torch.allclose(terms["cross_x"][:n].reshape(W.shape), cross_by_hand, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    depth=st.integers(1, 3),
    width=st.integers(1, 6),
    in_dim=st.integers(1, 4),
    batch=st.integers(1, 9),
    activation=st.sampled_from([nn.Tanh, nn.ReLU]),
    lam=st.one_of(st.floats(0.0, 1.0), st.just("per-example")),
    seed=st.integers(0, 2**31),
)
def test_the_four_terms_add_up_to_autograd(depth, width, in_dim, batch, activation, lam, seed):
    torch.manual_seed(seed)
    features = tanh_mlp([in_dim] + [width] * depth, activation)
    head = nn.Linear(width, 1).double()
    x, x2 = torch.randn(batch, in_dim, dtype=torch.float64), torch.randn(batch, in_dim, dtype=torch.float64)
    y, y2 = torch.randn(batch, 1, dtype=torch.float64), torch.randn(batch, 1, dtype=torch.float64)
    if lam == "per-example":
        lam = torch.rand(batch, dtype=torch.float64)
    terms = gradient_terms(features, head, x, x2, y, y2, lam)
    assert torch.allclose(total(terms), terms["autograd"], atol=1e-10, rtol=1e-10)


def test_float32_agrees_to_single_precision():
    features, head, x, x2, y, y2 = setup(seed=3)
    features, head = features.float(), head.float()
    terms = gradient_terms(features, head, x.float(), x2.float(), y.float(), y2.float(), 0.7)
    assert (total(terms) - terms["autograd"]).abs().max() < 1e-5


def test_gradient_vanishes_once_the_originals_are_fit():
    """Set the targets to the model's own outputs: e = e2 = 0, however un-flat F is."""
    features, head, x, x2, _, _ = setup(seed=4, widths=(3, 16, 16))
    with torch.no_grad():
        for p in features.parameters():
            p.mul_(5.0)  # a very non-linear, far-from-flat F
        y, y2 = head(features(x))[:, 0], head(features(x2))[:, 0]
    terms = gradient_terms(features, head, x, x2, y, y2, 0.4)
    for key, value in terms.items():
        assert value.abs().max() < 1e-12, key
    # ... while the same F with other targets has a sizeable gradient.
    assert gradient_terms(features, head, x, x2, y + 1, y2, 0.4)["autograd"].abs().max() > 1e-2


def test_y_of_shape_b1_equals_y_of_shape_b():
    features, head, x, x2, y, y2 = setup()
    a = gradient_terms(features, head, x, x2, y, y2, 0.3)
    b = gradient_terms(features, head, x, x2, y[:, None], y2[:, None], 0.3)
    assert all(torch.equal(a[k], b[k]) for k in a)


class CountOps(TorchDispatchMode):
    """Counts the tensor operations run inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_is_batched_not_a_loop_over_examples():
    """The number of tensor operations must not grow with the batch (timing is in bench/bench.py)."""
    counts = []
    for batch in (2, 40):
        features, head, x, x2, y, y2 = setup(batch=batch)
        with CountOps() as ops:
            gradient_terms(features, head, x, x2, y, y2, 0.3)
        counts.append(ops.count)
    assert counts[0] == counts[1], f"{counts[0]} operations for 2 pairs but {counts[1]} for 40"


# --- bad input -----------------------------------------------------------------------------------


def test_head_must_be_a_single_output_linear():
    features, head, x, x2, y, y2 = setup()
    with pytest.raises(TypeError, match="head must be an affine nn.Linear"):
        gradient_terms(features, nn.Sequential(head), x, x2, y, y2, 0.5)
    with pytest.raises(ValueError, match="head must have out_features == 1"):
        gradient_terms(features, nn.Linear(4, 2).double(), x, x2, y, y2, 0.5)
    with pytest.raises(TypeError, match="features"):
        gradient_terms(lambda t: t, head, x, x2, y, y2, 0.5)


def test_bad_inputs_name_the_argument():
    features, head, x, x2, y, y2 = setup()
    with pytest.raises(ValueError, match="lam"):
        gradient_terms(features, head, x, x2, y, y2, 1.5)
    with pytest.raises(ValueError, match="lam"):
        gradient_terms(features, head, x, x2, y, y2, torch.rand(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x2 has 6"):
        gradient_terms(features, head, x, x2[:6], y, y2, 0.5)
    with pytest.raises(TypeError, match="y2"):
        gradient_terms(features, head, x, x2, y, y2.long(), 0.5)
    with pytest.raises(ValueError, match="y2"):
        gradient_terms(features, head, x, x2, y, y2[:, None].repeat(1, 2), 0.5)
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        gradient_terms(features, head, x_nan, x2, y, y2, 0.5)
    with pytest.raises(ValueError, match=r"features must map a batch to shape \(B, 4\)"):
        gradient_terms(nn.Linear(3, 2).double(), head, x, x2, y, y2, 0.5)
    with pytest.raises(ValueError, match="features has no parameters"):
        gradient_terms(nn.Identity(), head, x, x2, y, y2, 0.5)


# --- the expected loss ---------------------------------------------------------------------------


def test_mixing_constant():
    assert mixing_constant(1.0) == pytest.approx(1 / 6)  # uniform: E[a(1-a)] = 1/2 - 1/3
    assert mixing_constant(2.0) == pytest.approx(0.2)
    assert mixing_constant(1e9) == pytest.approx(0.25)
    lam = sample_lambda(0.4, size=400_000, generator=gen()).double()
    assert (lam * (1 - lam)).mean().item() == pytest.approx(mixing_constant(0.4), rel=5e-3)
    with pytest.raises(ValueError, match="alpha"):
        mixing_constant(0.0)


def test_expected_mmix_loss_special_cases():
    const = torch.full((10,), 3.0)
    assert expected_mmix_loss(const, 2.0) == pytest.approx(4.5)  # equal residuals: mixing changes nothing
    centred = torch.tensor([1.0, -1.0, 2.0, -2.0])
    c = mixing_constant(2.0)
    assert expected_mmix_loss(centred, 2.0) == pytest.approx((1 - 2 * c) * 2.5 / 2)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_expected_mmix_loss_matches_monte_carlo(alpha):
    torch.manual_seed(0)
    e = torch.randn(64, dtype=torch.float64) + 1.0
    predicted = expected_mmix_loss(e, alpha)
    estimate = mmix_loss_monte_carlo(e, alpha, n_draws=20_000, generator=gen(1))
    assert estimate == pytest.approx(predicted, rel=3e-3)
    # The tolerance is tight enough to tell the formula from plain ERM or from dropping the mean term.
    erm = (e.pow(2).mean() / 2).item()
    no_mean_term = (1 - 2 * mixing_constant(alpha)) * erm
    assert abs(estimate - erm) > 10 * 3e-3 * predicted
    assert abs(estimate - no_mean_term) > 10 * 3e-3 * predicted


def test_with_an_affine_head_the_mixed_residual_is_the_mix_of_residuals():
    """Why the Monte Carlo over residuals is the manifold-mixup loss of the network itself."""
    features, head, x, _, y, _ = setup(seed=5)
    perm = random_pairing(7, gen())
    with torch.no_grad():
        z = features(x)
        e = y - head(z)[:, 0]
        network_loss = mixed_squared_loss(head(mix(z, 0.3, perm)), y, y[perm], 0.3)
    residual_loss = (0.5 * (0.3 * e + 0.7 * e[perm]).pow(2)).mean()
    assert torch.allclose(network_loss, residual_loss, atol=1e-12)


def test_expected_loss_errors():
    with pytest.raises(ValueError, match="alpha"):
        expected_mmix_loss(torch.randn(4), -1.0)
    with pytest.raises(TypeError, match="residuals"):
        expected_mmix_loss(torch.arange(4), 1.0)
    with pytest.raises(ValueError, match="n_draws"):
        mmix_loss_monte_carlo(torch.randn(4), 1.0, 0)


# --- mini-batches and the trainable bias -------------------------------------------------------------


def test_minibatch_formula_special_cases():
    torch.manual_seed(3)
    e = torch.randn(20, dtype=torch.float64) + 0.5
    # B = N is the whole-batch formula; B = 1 pairs each example with itself: plain ERM.
    assert expected_mmix_loss(e, 2.0, batch_size=20) == pytest.approx(expected_mmix_loss(e, 2.0))
    assert expected_mmix_loss(e, 2.0, batch_size=1) == pytest.approx((e.pow(2).mean() / 2).item())
    # The extra penalty is c * var(e) (N - B) / (B (N - 1)).
    c, var = mixing_constant(2.0), (e - e.mean()).pow(2).mean().item()
    extra = expected_mmix_loss(e, 2.0, batch_size=5) - expected_mmix_loss(e, 2.0)
    assert extra == pytest.approx(c * var * 15 / (5 * 19))


@pytest.mark.parametrize("batch_size", [2, 4])
def test_minibatch_formula_matches_monte_carlo(batch_size):
    torch.manual_seed(4)
    e = torch.randn(24, dtype=torch.float64) + 0.2
    predicted = expected_mmix_loss(e, 1.0, batch_size=batch_size)
    estimate = mmix_loss_monte_carlo(e, 1.0, n_draws=40_000, generator=gen(2), batch_size=batch_size)
    assert estimate == pytest.approx(predicted, rel=0.02)  # about 4 standard errors
    # ...and it is told apart from the whole-batch formula, which lacks the variance term.
    assert abs(estimate - expected_mmix_loss(e, 1.0)) > 0.05 * predicted


def test_the_best_bias_is_erms_and_leaves_a_rescaled_variance():
    """min over b of E[loss] = (1 - 2c) var(e) / 2 at b = mean(e): the minimiser of ERM."""
    torch.manual_seed(5)
    r = torch.randn(30, dtype=torch.float64) + 2.0  # residuals before the bias shift
    c, var = mixing_constant(2.0), (r - r.mean()).pow(2).mean().item()
    shifts = torch.linspace(-1, 5, 601, dtype=torch.float64)
    losses = torch.tensor([expected_mmix_loss(r - b, 2.0) for b in shifts], dtype=torch.float64)
    best = int(losses.argmin())
    assert shifts[best].item() == pytest.approx(r.mean().item(), abs=0.01)
    assert losses.min().item() == pytest.approx((1 - 2 * c) * var / 2, rel=1e-4)
    # In closed form: E = (1 - 2c) var / 2 + (mean(r) - b)^2 / 2 for every b.
    closed = (1 - 2 * c) * var / 2 + (r.mean() - shifts).pow(2) / 2
    assert torch.allclose(losses, closed, atol=1e-12)


def test_minibatch_errors():
    with pytest.raises(ValueError, match="batch_size"):
        expected_mmix_loss(torch.randn(4), 1.0, batch_size=5)
    with pytest.raises(ValueError, match="batch_size"):
        mmix_loss_monte_carlo(torch.randn(4), 1.0, 10, batch_size=0)
    with pytest.raises(TypeError):
        mmix_loss_monte_carlo(torch.randn(4), 1.0, 10, generator="seed", batch_size=2)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))])
def test_monte_carlo_runs_on_the_residuals_device(device):
    e = torch.randn(12, dtype=torch.float64, generator=gen(6)).to(device)
    full = mmix_loss_monte_carlo(e, 2.0, 50, gen(7))
    batched = mmix_loss_monte_carlo(e, 2.0, 50, gen(7), batch_size=4)
    assert full == pytest.approx(mmix_loss_monte_carlo(e.cpu(), 2.0, 50, gen(7)))
    assert batched == pytest.approx(mmix_loss_monte_carlo(e.cpu(), 2.0, 50, gen(7), batch_size=4))
