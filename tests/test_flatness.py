"""Tests for mixlib.flatness: class-conditional singular values, chord linearity, class subspaces, distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mixlib.flatness import (
    chord_deviation,
    chord_nonlinearity,
    chord_outputs,
    class_dimension,
    class_singular_values,
    class_subspaces,
    directions_for_energy,
    flattening_summary,
    head_split_bend,
    nearest_distance,
    sensitivity_ratio,
    share_outside,
)
from mixlib.manifold import StagedNet


def test_singular_values_by_hand():
    # class 0: rows [3, 0] and [0, 4] -> singular values 4, 3; class 2: one row [1, 1] -> sqrt(2)
    h = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 4.0]])
    labels = torch.tensor([0, 2, 0])
    values = class_singular_values(h, labels)
    assert list(values) == [0, 2]
    assert torch.allclose(values[0], torch.tensor([4.0, 3.0]))
    assert torch.allclose(values[2], torch.tensor([2.0**0.5]))
    top, rest = flattening_summary(h, labels)
    assert top == pytest.approx((4 + 2**0.5) / 2)
    assert rest == pytest.approx((3 + 0) / 2)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.booleans(), st.integers(0, 2**31))
def test_singular_values_match_numpy(n_classes, dim, center, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(30, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (30,), generator=g)
    values = class_singular_values(h, labels, center=center)
    for c, s in values.items():
        rows = h[labels == c].numpy()
        if center:
            rows = rows - rows.mean(axis=0)
        expected = np.linalg.svd(rows, compute_uv=False)
        assert np.allclose(s.numpy(), expected)
        assert bool((s[:-1] >= s[1:]).all())


def test_a_class_on_a_line_is_flat():
    torch.manual_seed(0)
    direction = torch.randn(5)
    h = torch.randn(20, 1) * direction + 3 * torch.randn(5)  # on a line, not through the origin
    labels = torch.zeros(20, dtype=torch.long)
    top, rest = flattening_summary(h, labels, center=True)
    assert top > 1 and rest < 1e-4
    # Without centring, the offset from the origin adds a second direction.
    assert flattening_summary(h, labels)[1] > 1e-2


def test_center_removes_the_class_mean():
    h = torch.tensor([[2.0, 5.0], [2.0, 5.0], [2.0, 5.0]])
    labels = torch.tensor([1, 1, 1])
    assert class_singular_values(h, labels, center=True)[1].abs().max() < 1e-6
    assert class_singular_values(h, labels)[1][0] > 1


def test_hidden_states_of_higher_rank_are_flattened_per_example():
    h = torch.randn(6, 2, 3)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.allclose(class_singular_values(h, labels)[0], torch.linalg.svdvals(h[:3].reshape(3, 6)))


def test_flatness_errors():
    with pytest.raises(TypeError, match="labels"):
        class_singular_values(torch.randn(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="batch sizes differ"):
        class_singular_values(torch.randn(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="h contains NaN"):
        flattening_summary(torch.full((2, 2), float("nan")), torch.zeros(2, dtype=torch.long))


# --- class dimension (centred shape) ------------------------------------------------------------


def _isotropic_in(r: int, dim: int = 8, n: int = 4000, seed: int = 0) -> torch.Tensor:
    """n points spread equally over r orthogonal directions of R^dim, far from the origin."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    coords = torch.randn(n, r, generator=g, dtype=torch.float64)
    whiten = torch.linalg.inv(torch.linalg.cholesky(torch.atleast_2d(torch.cov(coords.T))))
    coords = (coords - coords.mean(0)) @ whiten.T
    return coords @ basis[:, :r].T + 10.0


@pytest.mark.parametrize("measure", ["participation_ratio", "effective_rank"])
@pytest.mark.parametrize("r", [1, 3, 5])
def test_class_dimension_counts_equal_directions(measure, r):
    h = _isotropic_in(r)
    labels = torch.zeros(len(h), dtype=torch.long)
    assert class_dimension(h, labels, measure=measure) == pytest.approx(r, rel=1e-6)


def test_class_dimension_by_hand():
    # centred class 0: rows (+-2, 0) and (0, +-1) -> covariance eigenvalues in ratio 4 : 1
    h = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0], [5.0, 5.0], [6.0, 6.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    values = class_dimension(h, labels, reduction="none")
    assert values[0] == pytest.approx(25 / 17)  # (4 + 1)^2 / (16 + 1)
    assert values[1] == pytest.approx(1.0)  # two points: one direction
    p = torch.tensor([0.8, 0.2], dtype=torch.float64)
    assert class_dimension(h, labels, measure="effective_rank", reduction="none")[0] == pytest.approx(
        float(torch.exp(-(p * p.log()).sum()))
    )
    assert class_dimension(h, labels) == pytest.approx((25 / 17 + 1) / 2)


def test_class_dimension_is_free_of_scale_and_offset_unlike_the_uncentred_ratio():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(200, 6, generator=g) * torch.tensor([3.0, 2.0, 1.0, 1.0, 0.5, 0.1])
    labels = torch.arange(200) % 2
    for measure in ("participation_ratio", "effective_rank"):
        base = class_dimension(h, labels, measure=measure)
        assert class_dimension(7 * h + 4, labels, measure=measure) == pytest.approx(base, rel=1e-5)
    top, rest = flattening_summary(h, labels)
    top_far, rest_far = flattening_summary(h + 4, labels)
    assert rest_far / top_far < 0.5 * rest / top  # moving away from the origin shrinks rest/top


def test_class_dimension_errors():
    h, labels = torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="measure"):
        class_dimension(h, labels, measure="rank")
    with pytest.raises(ValueError, match="reduction"):
        class_dimension(h, labels, reduction="sum")
    with pytest.raises(ValueError, match="class 1"):
        class_dimension(torch.randn(4, 3), torch.tensor([0, 0, 2, 1]))
    with pytest.raises(ValueError, match="class 0"):
        class_dimension(torch.ones(4, 3), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(TypeError, match="labels"):
        class_dimension(h, labels.float())


# --- chords --------------------------------------------------------------------------------------


def test_chord_outputs_shapes_and_ends():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    x, x2 = torch.randn(4, 3), torch.randn(4, 3)
    ts, outputs = chord_outputs(model, x, x2, n_points=5)
    assert torch.allclose(ts, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert outputs.shape == (5, 4, 2)
    with torch.no_grad():
        assert torch.allclose(outputs[0], model(x2), atol=1e-6)  # t = 0 is x2
        assert torch.allclose(outputs[-1], model(x), atol=1e-6)  # t = 1 is x
        assert torch.allclose(outputs[1], model(0.25 * x + 0.75 * x2), atol=1e-6)


def test_chord_nonlinearity_by_hand():
    """f(u) = u^2: f(t x + (1-t) x2) - (t f(x) + (1-t) f(x2)) = -t (1-t) (x - x2)^2."""
    x, x2 = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [2.0]])
    # ts = 0, 1/2, 1: mean of t (1-t) is (1/4) / 3; pair 0 has (x - x2)^2 = 4, pair 1 has 0.
    per_pair = chord_nonlinearity(torch.square, x, x2, n_points=3, transform=None, reduction="none")
    assert torch.allclose(per_pair, torch.tensor([4 / 12, 0.0]))
    assert chord_nonlinearity(torch.square, x, x2, n_points=3, transform=None).item() == pytest.approx(4 / 24)


def test_a_linear_model_is_linear_along_chords():
    torch.manual_seed(0)
    linear = nn.Linear(3, 4)
    x, x2 = torch.randn(8, 3), torch.randn(8, 3)
    assert chord_nonlinearity(linear, x, x2, transform=None).item() < 1e-6
    # ... but its softmax probabilities are not, and a tanh network is not either.
    assert chord_nonlinearity(linear, x, x2).item() > 1e-3
    curved = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 4))
    with torch.no_grad():
        curved[0].weight.mul_(5)
    assert chord_nonlinearity(curved, x, x2, transform=None).item() > 1e-2


def test_chord_nonlinearity_default_is_on_probabilities():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 4))
    x, x2 = torch.randn(8, 3), torch.randn(8, 3)
    as_probs = chord_nonlinearity(model, x, x2, transform=lambda out: torch.softmax(out, dim=-1))
    assert torch.allclose(chord_nonlinearity(model, x, x2), as_probs)


def test_chord_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="n_points"):
        chord_outputs(nn.Identity(), x, x, n_points=1)
    with pytest.raises(ValueError, match="x2"):
        chord_outputs(nn.Identity(), x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch sizes differ"):
        chord_outputs(nn.Identity(), x, torch.randn(3, 3))
    with pytest.raises(TypeError, match="x2"):
        chord_outputs(nn.Identity(), x, x.long())
    with pytest.raises(ValueError, match="transform"):
        chord_nonlinearity(nn.Identity(), x, x, transform="sigmoid")
    with pytest.raises(ValueError, match="reduction"):
        chord_nonlinearity(nn.Identity(), x, x, reduction="max")


# --- class subspaces -------------------------------------------------------------------------------------


def planted(n: int = 50, dim: int = 10, k: int = 3, seed: int = 0):
    """Two classes, each on its own k-dimensional affine subspace of R^dim."""
    g = torch.Generator().manual_seed(seed)
    rows, labels = [], []
    for c in range(2):
        basis = torch.linalg.qr(torch.randn(dim, k, generator=g, dtype=torch.float64)).Q
        coef = torch.randn(n, k, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0][:k],
                                                                                  dtype=torch.float64)
        rows.append(5 * c + coef @ basis.T)
        labels.append(torch.full((n,), c))
    return torch.cat(rows), torch.cat(labels)


def test_directions_for_energy_finds_the_planted_dimension():
    h, labels = planted()
    assert directions_for_energy(h, labels, 0.999) == {0: 3, 1: 3}
    # the first direction carries 9 / 14 of the variance (stds 3, 2, 1), the first two 13 / 14
    assert directions_for_energy(h, labels, 0.5) == {0: 1, 1: 1}


def test_share_outside_is_zero_inside_and_one_orthogonal():
    h, labels = planted()
    subspaces = class_subspaces(h, labels, 0.999)
    mean, basis = subspaces[0]
    assert basis.shape == (10, 3)
    assert torch.allclose(basis.T @ basis, torch.eye(3, dtype=basis.dtype), atol=1e-10)
    inside = share_outside(h[labels == 0], mean, basis)
    assert float(inside.max()) < 1e-10
    normal = torch.linalg.qr(torch.cat([basis, torch.randn(10, 1, dtype=basis.dtype)], 1)).Q[:, 3]
    outside = share_outside((mean + 2 * normal)[None], mean, basis)
    assert torch.allclose(outside, torch.ones(1, dtype=outside.dtype))


def test_a_class_of_identical_points_has_no_directions():
    h = torch.ones(4, 3)
    labels = torch.zeros(4, dtype=torch.long)
    assert directions_for_energy(h, labels) == {0: 0}
    mean, basis = class_subspaces(h, labels)[0]
    assert basis.shape == (3, 0)
    assert torch.allclose(share_outside(torch.zeros(1, 3), mean, basis), torch.ones(1))


def test_subspace_functions_check_their_arguments():
    h, labels = planted()
    with pytest.raises(ValueError, match="energy"):
        class_subspaces(h, labels, 1.0)
    with pytest.raises(TypeError, match="integer class indices"):
        directions_for_energy(h, labels.float())
    with pytest.raises(ValueError, match="batch sizes differ"):
        class_subspaces(h, labels[:10])
    mean, basis = class_subspaces(h, labels)[0]
    with pytest.raises(ValueError, match="basis"):
        share_outside(h, mean[:5], basis)


def test_nearest_distance_with_and_without_a_mask():
    reference = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    points = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    assert torch.allclose(nearest_distance(points, reference), torch.tensor([1.0, 1.0]))
    allowed = torch.tensor([[False, True, True], [True, True, False]])
    assert torch.allclose(nearest_distance(points, reference, allowed), torch.tensor([2.0, 4.0]))
    none_allowed = torch.zeros(2, 3, dtype=torch.bool)
    assert torch.isinf(nearest_distance(points, reference, none_allowed)).all()
    # the same answer as a brute-force loop on random data
    g = torch.Generator().manual_seed(0)
    p, r = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g)
    mask = torch.rand(7, 11, generator=g) > 0.3
    brute = torch.stack([min((p[q] - r[k]).norm() for k in range(11) if mask[q, k]) for q in range(7)])
    assert torch.allclose(nearest_distance(p, r, mask), brute, atol=1e-6)


def test_nearest_distance_errors():
    with pytest.raises(ValueError, match="points and reference"):
        nearest_distance(torch.randn(3, 2), torch.randn(4, 3))
    with pytest.raises(TypeError, match="allowed"):
        nearest_distance(torch.randn(3, 2), torch.randn(4, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match="allowed"):
        nearest_distance(torch.randn(3, 2), torch.randn(4, 2), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="points"):
        nearest_distance(torch.ones(3, 2, dtype=torch.long), torch.randn(4, 2))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))])
def test_nearest_distance_on_any_device(device):
    g = torch.Generator().manual_seed(1)
    p, r = torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g)
    mask = torch.rand(5, 6, generator=g) > 0.2  # built on the CPU, as a notebook would
    out = nearest_distance(p.to(device), r.to(device), mask)
    assert out.device.type == device
    assert torch.allclose(out.cpu(), nearest_distance(p, r, mask))


def test_labels_equal_to_num_classes_are_rejected_when_the_classes_are_known():
    h, labels = planted()
    bad = labels.clone()
    bad[0] = 2
    message = r"labels must be class indices in \[0, 1\], got values from 0 to 2"
    for measure in (class_singular_values, flattening_summary, class_subspaces, directions_for_energy):
        with pytest.raises(ValueError, match=message):
            measure(h, bad, num_classes=2)
        measure(h, labels, num_classes=2)  # in range: fine


def test_an_empty_batch_gets_a_clear_error():
    with pytest.raises(ValueError, match="h must hold at least one representation"):
        class_singular_values(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="x must hold at least one pair"):
        chord_nonlinearity(net, torch.zeros(0, 3), torch.zeros(0, 3))


# --- where the bend lies relative to the head; sensitivity to perturbations ----------------------------


class _QuadraticBend(nn.Module):
    """``h(x) = A x + v (u . x)^2``: along a chord its bend is ``-t (1 - t) (u . (x - x2))^2 v``, always along ``v``."""

    def __init__(self, a: torch.Tensor, v: torch.Tensor, u: torch.Tensor) -> None:
        super().__init__()
        self.a, self.v, self.u = a, v, u

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.T + (x @ self.u)[:, None] ** 2 * self.v


def _bent_net(weight: torch.Tensor, v: torch.Tensor, seed: int = 0, dtype: torch.dtype = torch.float64) -> StagedNet:
    """A StagedNet (inputs of width 3) whose features bend along ``v`` only, under a linear head of ``weight``."""
    g = torch.Generator().manual_seed(seed)
    d = weight.shape[1]
    head = nn.Linear(d, weight.shape[0]).to(dtype)
    with torch.no_grad():
        head.weight.copy_(weight)
    block = _QuadraticBend(torch.randn(d, 3, generator=g, dtype=dtype), v.to(dtype), torch.randn(3, generator=g,
                                                                                                 dtype=dtype))
    return StagedNet([block], head)


def _row_and_null(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A unit vector in the row space of ``weight`` and one orthogonal to it."""
    q = torch.linalg.qr(torch.cat([weight.T, torch.randn(weight.shape[1], 1, dtype=weight.dtype,
                                                         generator=torch.Generator().manual_seed(9))], 1)).Q
    return q[:, 0], q[:, weight.shape[0]]


def _chords(seed: int = 1, batch: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, generator=g, dtype=torch.float64), torch.randn(batch, 3, generator=g,
                                                                                dtype=torch.float64)


_W = torch.randn(2, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # rank 2 in R^5


def test_a_bend_in_the_heads_null_space_is_all_rest_and_never_reaches_the_logits():
    _, null = _row_and_null(_W)
    model, (x, x2) = _bent_net(_W, null), _chords()
    split = head_split_bend(model, x, x2)
    assert set(split) == {"full", "head", "rest"} and all(v.shape == (6,) for v in split.values())
    assert float(split["full"].min()) > 1e-2
    assert torch.allclose(split["head"], torch.zeros(6, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(split["rest"], split["full"])
    assert torch.allclose(chord_deviation(model, x, x2), torch.zeros(6, dtype=torch.float64), atol=1e-10)


def test_a_bend_in_the_heads_row_space_is_all_head_and_bends_the_logits():
    row, _ = _row_and_null(_W)
    model, (x, x2) = _bent_net(_W, row), _chords()
    split = head_split_bend(model, x, x2)
    assert torch.allclose(split["rest"], torch.zeros(6, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(split["head"], split["full"]) and float(split["full"].min()) > 1e-2
    assert float(chord_deviation(model, x, x2).min()) > 1e-2


def test_full_is_chord_deviation_and_the_parts_add_as_the_normalisation_implies():
    row, null = _row_and_null(_W)
    # one direction along the chord, 3 parts row to 4 parts null: full^2 = head^2 + rest^2, 3 : 4 : 5
    model, (x, x2) = _bent_net(_W, 3 * row + 4 * null), _chords()
    split = head_split_bend(model, x, x2, n_points=7)
    assert torch.allclose(split["full"], chord_deviation(model.features, x, x2, n_points=7))
    assert torch.allclose(split["head"] ** 2 + split["rest"] ** 2, split["full"] ** 2)
    assert torch.allclose(split["head"] / split["full"], torch.full((6,), 0.6, dtype=torch.float64))
    # a bend that turns along the chord: sqrt(head^2 + rest^2) <= full <= head + rest, strictly here
    torch.manual_seed(0)
    net = StagedNet([nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 5), nn.Tanh())], nn.Linear(5, 2))
    with torch.no_grad():
        net.blocks[0][0].weight.mul_(4)
    x, x2 = (t.float() for t in _chords(batch=8))
    split = head_split_bend(net, x, x2)
    assert split["full"].dtype == torch.float32
    assert torch.equal(split["full"], chord_deviation(net.features, x, x2))
    pythagoras = (split["head"] ** 2 + split["rest"] ** 2).sqrt()
    assert bool((pythagoras <= split["full"] * (1 + 1e-5)).all())
    assert bool((split["full"] <= (split["head"] + split["rest"]) * (1 + 1e-5)).all())
    assert bool((pythagoras < split["full"] * (1 - 1e-4)).any())
    # the logits bend by W d_t = W P d_t: the logit bend's numerator, from the features' bend
    with torch.no_grad():
        h = torch.stack([net.features(t * x + (1 - t) * x2) for t in torch.linspace(0, 1, 11)])
        logits = net(x) - net(x2)
    ts = torch.linspace(0, 1, 11).reshape(-1, 1, 1)
    bend = h - (ts * h[-1] + (1 - ts) * h[0])
    expected = (bend @ net.head.weight.detach().T).norm(dim=-1).mean(0) / logits.norm(dim=-1)
    assert torch.allclose(chord_deviation(net, x, x2), expected, atol=1e-5)


def test_a_rank_deficient_head_reads_only_its_rows():
    row, null = _row_and_null(_W[:1])  # the line of the first row of _W, and a direction orthogonal to it
    weight = torch.cat([_W[:1], 0.1 * _W[:1], torch.zeros_like(_W[:1])])  # rank 1: its row space is that line
    x, x2 = _chords()
    zeros = torch.zeros(6, dtype=torch.float64)
    assert torch.allclose(head_split_bend(_bent_net(weight, row), x, x2)["rest"], zeros, atol=1e-10)
    assert torch.allclose(head_split_bend(_bent_net(weight, null), x, x2)["head"], zeros, atol=1e-10)
    blind = head_split_bend(_bent_net(torch.zeros(3, 5, dtype=torch.float64), row + null), x, x2)
    assert torch.equal(blind["head"], zeros) and torch.allclose(blind["rest"], blind["full"])
    # in float32 the rounding of 0.1 * w does not count as a second direction of the head
    split32 = head_split_bend(_bent_net(weight, null, dtype=torch.float32), x.float(), x2.float())
    assert float(split32["head"].max()) < 1e-5 * float(split32["full"].min())


def test_a_network_linear_along_chords_has_no_bend_and_no_logit_bend():
    torch.manual_seed(0)
    net = StagedNet([nn.Linear(3, 6), nn.Linear(6, 5)], nn.Linear(5, 4))
    x, x2 = (t.float() for t in _chords())
    assert float(chord_deviation(net, x, x2).max()) < 1e-5
    assert all(float(v.max()) < 1e-5 for v in head_split_bend(net, x, x2).values())


def test_sensitivity_ratio_of_the_identity_is_the_pixel_computation():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(9, 1, 4, 4, generator=g, dtype=torch.float64)
    moved = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    flat, flat_moved = x.reshape(9, -1), moved.reshape(9, -1)
    between = [float((flat[i] - flat[j]).norm()) for i in range(9) for j in range(9) if i != j]
    direct = float((flat_moved - flat).norm(dim=1).mean()) / (sum(between) / len(between))
    assert sensitivity_ratio(nn.Identity(), x, moved) == pytest.approx(direct, rel=1e-12)
    assert sensitivity_ratio(lambda t: t, x, x) == 0.0


def test_sensitivity_ratio_ignores_the_scale_of_the_features_and_sees_invariance():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g)
    moved = x + 0.3 * torch.randn(x.shape, generator=g)
    a = torch.randn(6, 4, generator=g)
    base = sensitivity_ratio(lambda t: torch.tanh(t @ a), x, moved)
    assert sensitivity_ratio(lambda t: 25 * torch.tanh(t @ a), x, moved) == pytest.approx(base, rel=1e-6)
    shuffled = x[:, torch.randperm(6, generator=g)]  # a perturbation the sorted values do not see
    assert sensitivity_ratio(lambda t: t.sort(dim=1).values, x, shuffled) == pytest.approx(0.0, abs=1e-7)
    assert sensitivity_ratio(nn.Identity(), x, shuffled) > 0.1


def test_head_split_and_sensitivity_name_their_bad_arguments():
    net = StagedNet([nn.Linear(3, 5)], nn.Linear(5, 2))
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        head_split_bend("net", x, x)
    with pytest.raises(TypeError, match="model must have a features method"):
        head_split_bend(nn.Linear(3, 2), x, x)
    with pytest.raises(TypeError, match="model.head must be an nn.Linear"):
        head_split_bend(StagedNet([nn.Linear(3, 5)], nn.Sequential(nn.Linear(5, 2))), x, x)
    with pytest.raises(ValueError, match="in_features=4"):
        head_split_bend(StagedNet([nn.Linear(3, 5)], nn.Linear(4, 2)), x, x)
    with pytest.raises(ValueError, match="x2 must have the shape of x"):
        head_split_bend(net, x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch sizes differ: x has 4, x2 has 3"):
        head_split_bend(net, x, x[:3])
    with pytest.raises(ValueError, match="n_points"):
        head_split_bend(net, x, x, n_points=1)
    with pytest.raises(TypeError, match="features"):
        chord_deviation("relu", x, x)
    with pytest.raises(TypeError, match="features"):
        sensitivity_ratio("relu", x, x)
    with pytest.raises(ValueError, match="x_perturbed must have the shape of x"):
        sensitivity_ratio(nn.Identity(), x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch sizes differ"):
        sensitivity_ratio(nn.Identity(), x, x[:3])
    with pytest.raises(TypeError, match="x_perturbed"):
        sensitivity_ratio(nn.Identity(), x, x.long())
    with pytest.raises(ValueError, match="at least two examples"):
        sensitivity_ratio(nn.Identity(), x[:1], x[:1])
    with pytest.raises(ValueError, match="same point"):
        sensitivity_ratio(lambda t: torch.zeros(len(t), 2), x, x + 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_measured_in_float32_and_returned_in_its_own_dtype(dtype):
    """torch has no SVD for half precision: the singular values of the same (rounded) numbers in float32."""
    h, labels = torch.randn(12, 5).to(dtype), torch.tensor([0, 1, 2] * 4)
    for center in (False, True):
        half = class_singular_values(h, labels, center=center)
        wide = class_singular_values(h.float(), labels, center=center)
        for c in wide:
            assert half[c].dtype == dtype
            assert torch.equal(half[c], wide[c].to(dtype))
