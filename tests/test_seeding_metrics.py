"""mixlib.seeding and mixlib.metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mixlib
from mixlib import metrics


def test_seed_everything_makes_torch_repeatable_and_returns_a_seeded_generator():
    g1 = mixlib.seed_everything(3)
    a = torch.randn(4), torch.randn(2, generator=g1)
    g2 = mixlib.seed_everything(3)
    b = torch.randn(4), torch.randn(2, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        mixlib.seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        mixlib.seed_everything(1.5)


class Fixed(nn.Module):
    """Returns preset logits whatever the input (one row per input row)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]]


def test_reliability_bins_and_ece_by_hand():
    probs = torch.tensor([[0.95, 0.05], [0.85, 0.15], [0.35, 0.65], [0.45, 0.55]])
    labels = torch.tensor([0, 1, 1, 0])
    rel = metrics.reliability(probs, labels, n_bins=2)
    # bin (0, 0.5]: empty; bin (0.5, 1]: all four, confidence 0.75, accuracy 0.5
    assert rel.count.tolist() == [0, 4]
    assert torch.isnan(rel.accuracy[0])
    assert rel.confidence[1].item() == pytest.approx(0.75)
    assert rel.accuracy[1].item() == pytest.approx(0.5)
    assert rel.ece == pytest.approx(0.25)
    rel10 = metrics.reliability(probs, labels, n_bins=10)
    # bins: 0.95 -> (0.9,1], 0.85 -> (0.8,0.9], 0.65 -> (0.6,0.7], 0.55 -> (0.5,0.6]
    expected = (abs(1 - 0.95) + abs(0 - 0.85) + abs(1 - 0.65) + abs(0 - 0.55)) / 4
    assert rel10.ece == pytest.approx(expected)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert metrics.reliability(probs, labels).ece == pytest.approx(0.0)


def test_accuracy_and_confidence_away_from_data():
    model = Fixed(torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 0.1]]))
    x = torch.zeros(3, 2)
    assert metrics.accuracy(model, x, torch.tensor([0, 1, 0])) == pytest.approx(2 / 3)
    # one far point whose top probability is 0.993 > 0.99
    far = metrics.confidence_away_from_data(Fixed(torch.tensor([[5.0, 0.0]])), torch.zeros(1, 2),
                                            torch.tensor([[3.0, 0.0]]), min_distance=1.0)
    assert far == 1.0
    with pytest.raises(ValueError, match="min_distance"):
        metrics.confidence_away_from_data(model, torch.zeros(1, 2), torch.zeros(1, 2), min_distance=1.0)


def test_grid_covers_the_data_with_margin():
    coords, points = metrics.grid(torch.tensor([[0.0, 0.0], [1.0, 2.0]]), resolution=5, margin=0.5)
    assert coords.shape == (2, 5, 5) and points.shape == (25, 2)
    assert points.min(0).values.tolist() == [-0.5, -0.5]
    assert points.max(0).values.tolist() == [1.5, 2.5]
    with pytest.raises(ValueError, match="x must have 2 columns"):
        metrics.grid(torch.zeros(3, 3))


def test_accuracy_of_logits_agrees_with_the_model_level_accuracy():
    torch.manual_seed(0)
    model, x, y = nn.Linear(3, 4), torch.randn(20, 3), torch.randint(0, 4, (20,))
    with torch.no_grad():
        scores = model(x)
    expected = float((scores.argmax(1) == y).float().mean())
    assert metrics.accuracy_of(scores, y) == pytest.approx(expected)
    assert metrics.accuracy_of(torch.softmax(scores, 1), y) == pytest.approx(expected)
    assert metrics.accuracy(model, x, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\]"):
        metrics.accuracy_of(scores, torch.full((20,), 4))
