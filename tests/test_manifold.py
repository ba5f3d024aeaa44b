"""Tests for mixlib.manifold: StagedNet, mlp and mix_at."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mixlib.manifold import StagedNet, mix_at, mlp
from mixlib.mixing import mix, mixed_cross_entropy, random_pairing, sample_lambda


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_net(**kwargs) -> StagedNet:
    torch.manual_seed(0)
    return mlp(4, [8, 6, 5], 3, **kwargs)


def test_mlp_structure():
    net = small_net(activation="tanh")
    assert len(net.blocks) == 3
    assert isinstance(net.blocks, nn.ModuleList)
    assert isinstance(net.blocks[0][0], nn.Linear) and isinstance(net.blocks[0][1], nn.Tanh)
    assert isinstance(net.head, nn.Linear) and net.head.out_features == 3
    assert net.eligible_layers == (0, 1, 2, 3)
    assert mlp(2, 7, 1).blocks[0][0].out_features == 7
    assert mlp(2, [3], 1, eligible_layers=[1, 0, 1]).eligible_layers == (0, 1)


def test_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        mlp(2, [3], 1, activation="sigmoid")
    with pytest.raises(ValueError, match="hidden"):
        mlp(2, [3, 0], 1)
    with pytest.raises(ValueError, match="eligible_layers"):
        mlp(2, [3], 1, eligible_layers=[0, 2])
    with pytest.raises(ValueError, match="eligible_layers"):
        mlp(2, [3], 1, eligible_layers=[])


def test_forward_is_blocks_then_head():
    net = small_net()
    x = torch.randn(5, 4)
    expected = net.head(net.blocks[2](net.blocks[1](net.blocks[0](x))))
    assert torch.allclose(net(x), expected)
    assert torch.allclose(net.features(x), net.blocks[2](net.blocks[1](net.blocks[0](x))))
    assert torch.equal(net.features(x, 0), x)


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_features_then_forward_from_is_forward(layer):
    net = small_net()
    x = torch.randn(5, 4)
    assert torch.allclose(net.forward_from(net.features(x, layer), layer), net(x))


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_forward_mixed_endpoints(layer):
    net = small_net()
    x, perm = torch.randn(6, 4), random_pairing(6, gen())
    assert torch.allclose(net.forward_mixed(x, layer, 1.0, perm), net(x))
    # lam = 0 replaces every hidden state by its partner's; the rest of the net is per-example.
    assert torch.allclose(net.forward_mixed(x, layer, 0.0, perm), net(x)[perm])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3), st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2**31))
def test_forward_mixed_mixes_the_hidden_state(layer, lam, per_example, seed):
    net = small_net()
    g = gen(seed)
    x, perm = torch.randn(5, 4, generator=g), random_pairing(5, g)
    weight = torch.rand(5, generator=g) if per_example else lam
    w = weight[:, None] if per_example else weight
    h = net.features(x, layer)
    expected = net.forward_from(w * h + (1 - w) * h[perm], layer)
    assert torch.allclose(net.forward_mixed(x, layer, weight, perm), expected, atol=1e-6)


def test_forward_mixed_at_layer_zero_is_input_mixup():
    net = small_net()
    x, perm = torch.randn(5, 4), random_pairing(5, gen())
    assert torch.allclose(net.forward_mixed(x, 0, 0.3, perm), net(mix(x, 0.3, perm)))


def test_layer_outside_eligible_set_is_rejected():
    net = small_net(eligible_layers=[0, 2])
    x, perm = torch.randn(5, 4), random_pairing(5, gen())
    with pytest.raises(ValueError, match=r"layer must be one of the eligible layers \(0, 2\), got 1"):
        net.forward_mixed(x, 1, 0.5, perm)
    with pytest.raises(ValueError, match="layer"):
        net.forward_mixed(x, 4, 0.5, perm)
    # Measuring features is allowed at any layer, not only the eligible ones.
    assert net.features(x, 1).shape == (5, 8)
    with pytest.raises(ValueError, match=r"layer must be one of the layers \(0, 1, 2, 3\)"):
        net.features(x, 4)
    with pytest.raises(ValueError, match="layer"):
        net.forward_from(x, -1)


def test_forward_mixed_checks_lam_and_perm():
    net = small_net()
    x, perm = torch.randn(5, 4), random_pairing(5, gen())
    with pytest.raises(ValueError, match="lam"):
        net.forward_mixed(x, 1, 1.2, perm)
    with pytest.raises(ValueError, match="perm"):
        net.forward_mixed(x, 1, 0.5, perm[:4])
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        net.forward_mixed(x, 2, 0.5, perm)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        net.forward_mixed(torch.ones(5, 4, dtype=torch.long), 2, 0.5, perm)


def test_sample_layer_covers_the_eligible_set_uniformly():
    net = small_net(eligible_layers=[0, 1, 3])
    g = gen(4)
    counts = Counter(net.sample_layer(g) for _ in range(3000))
    assert set(counts) == {0, 1, 3}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in counts.values())
    assert [net.sample_layer(gen(1)) for _ in range(3)] == [net.sample_layer(gen(1))] * 3


def test_a_manifold_mixup_step_trains():
    torch.manual_seed(0)
    net = mlp(2, [16, 16], 2)
    x = torch.randn(64, 2)
    y = (x[:, 0] > 0).long()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    g = gen(0)
    losses = []
    for _ in range(60):
        lam, perm, layer = sample_lambda(2.0, generator=g), random_pairing(64, g), net.sample_layer(g)
        loss = mixed_cross_entropy(net.forward_mixed(x, layer, lam, perm), y, y[perm], lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < sum(losses[:10])


# --- mix_at --------------------------------------------------------------------------------------


def test_mix_at_matches_forward_mixed():
    net = small_net()
    x, perm = torch.randn(6, 4), random_pairing(6, gen())
    lam = torch.rand(6)
    with mix_at(net, "blocks.1", lam, perm) as module:
        assert module is net.blocks[1]
        out = net(x)
    assert torch.allclose(out, net.forward_mixed(x, 2, lam, perm))


class TinyConvNet(nn.Module):
    """A custom module that is not a StagedNet."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def test_mix_at_works_on_any_module_and_backpropagates():
    torch.manual_seed(0)
    net = TinyConvNet()
    x, perm = torch.randn(4, 1, 5, 5), random_pairing(4, gen())
    with mix_at(net, "conv", 0.6, perm):
        out = net(x)
    h = net.conv(x)
    expected = net.fc(net.pool(torch.relu(0.6 * h + 0.4 * h[perm])).flatten(1))
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    assert net.conv.weight.grad is not None


def test_mix_at_removes_the_hook_on_exit_and_on_exception():
    net = small_net()
    x, perm = torch.randn(6, 4), random_pairing(6, gen())
    with mix_at(net, "blocks.0", 0.5, perm):
        assert len(net.blocks[0]._forward_hooks) == 1
    assert len(net.blocks[0]._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with mix_at(net, "blocks.0", 0.5, perm):
            raise RuntimeError("boom")
    assert len(net.blocks[0]._forward_hooks) == 0
    assert torch.allclose(net(x), net.forward_from(net.features(x), 3))


def test_mix_at_unknown_name_lists_valid_names():
    net = small_net()
    with pytest.raises(ValueError, match=r"'block\.1' is not a submodule.*'blocks\.0'"):
        with mix_at(net, "block.1", 0.5, random_pairing(6, gen())):
            pass


def test_mix_at_checks_lam_and_perm():
    net = small_net()
    with pytest.raises(ValueError, match="lam"):
        with mix_at(net, "blocks.0", -0.5, random_pairing(6, gen())):
            pass
    with pytest.raises(TypeError, match="perm"):
        with mix_at(net, "blocks.0", 0.5, torch.arange(6.0)):
            pass
    with pytest.raises(ValueError, match="perm"):  # the batch size is only known inside the forward pass
        with mix_at(net, "blocks.0", 0.5, random_pairing(5, gen())):
            net(torch.randn(6, 4))
    assert len(net.blocks[0]._forward_hooks) == 0
