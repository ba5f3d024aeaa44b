"""mixlib.data: shapes, dtypes, seeding and argument checks of the data sets."""

from __future__ import annotations

import pytest
import torch

import mixlib
from mixlib.data import batches


@pytest.mark.parametrize("loader", [mixlib.two_moons, mixlib.spirals, mixlib.digits])
def test_classification_splits_have_float_inputs_and_int_labels(loader):
    split = loader(seed=3)
    assert split.x_train.dtype == torch.float32 and split.x_test.dtype == torch.float32
    assert split.y_train.dtype == torch.int64 and split.y_test.dtype == torch.int64
    assert split.x_train.shape[0] == split.y_train.shape[0]
    assert split.x_test.shape[0] == split.y_test.shape[0]
    assert set(split.y_train.tolist()) == set(range(split.num_classes))


def test_digits_is_the_bundled_data_set_scaled_to_unit_interval():
    split = mixlib.digits(test_size=0.3, seed=0)
    assert split.num_classes == 10 and split.input_dim == 64
    assert split.x_train.shape[0] + split.x_test.shape[0] == 1797
    assert float(split.x_train.min()) == 0.0 and float(split.x_train.max()) == 1.0


def test_regression_task_has_float_targets_and_no_classes():
    split = mixlib.regression_1d(n=100, seed=1)
    assert split.num_classes is None
    assert split.x_train.shape == (50, 1) and split.y_train.shape == (50,)
    assert split.y_train.dtype == torch.float32
    assert "regression" in repr(split)


@pytest.mark.parametrize("loader", [mixlib.two_moons, mixlib.spirals, mixlib.regression_1d, mixlib.digits])
def test_same_seed_same_data_other_seed_other_split(loader):
    a, b, c = loader(seed=5), loader(seed=5), loader(seed=6)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_spirals_arms_are_balanced_and_wind_around_the_origin():
    split = mixlib.spirals(n=400, num_classes=4, noise=0.0, test_size=0.5, seed=0)
    x = torch.cat([split.x_train, split.x_test])
    y = torch.cat([split.y_train, split.y_test])
    assert torch.bincount(y).tolist() == [100, 100, 100, 100]
    radius = x.norm(dim=1)
    assert float(radius.min()) >= 0.1 - 1e-6 and float(radius.max()) <= 1.0 + 1e-6


def test_two_moons_is_standardised():
    split = mixlib.two_moons(n=1000, seed=0, test_size=0.5)
    x = torch.cat([split.x_train, split.x_test])
    assert torch.allclose(x.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(2), atol=1e-4)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: mixlib.two_moons(n=0), "n"),
        (lambda: mixlib.two_moons(n=4), "n"),
        (lambda: mixlib.two_moons(noise=-1.0), "noise"),
        (lambda: mixlib.two_moons(test_size=1.5), "test_size"),
        (lambda: mixlib.two_moons(seed=-1), "seed"),
        (lambda: mixlib.spirals(num_classes=1), "num_classes"),
        (lambda: mixlib.spirals(turns=0), "turns"),
        (lambda: mixlib.regression_1d(n=2), "n"),
        (lambda: mixlib.digits(test_size=0.0), "test_size"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize(
    ("call", "name"),
    [(lambda: mixlib.two_moons(n=10.5), "n"), (lambda: mixlib.digits(seed="0"), "seed")],
)
def test_wrong_types_raise_type_error_naming_the_argument(call, name):
    with pytest.raises(TypeError, match=name):
        call()


def test_batches_cover_every_example_once_in_a_seeded_order():
    x = torch.arange(10.0)[:, None]
    y = torch.arange(10)
    seen = [yb for _, yb in batches(x, y, 4, torch.Generator().manual_seed(0))]
    assert [len(b) for b in seen] == [4, 4, 2]
    assert sorted(torch.cat(seen).tolist()) == list(range(10))
    again = [yb for _, yb in batches(x, y, 4, torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(seen, again, strict=True))
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(x, y, 0))


def test_batches_take_float_features_and_labels_or_regression_targets():
    x = torch.arange(12.0).reshape(6, 2)
    for y in (torch.arange(6), torch.randn(6), torch.randn(6, 1)):
        assert sum(len(yb) for _, yb in batches(x, y, 4)) == 6
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got dtype torch.int64"):
        next(batches(x.long(), torch.arange(6), 4))
    with pytest.raises(ValueError, match=r"y has shape \(6, 3\): float targets mean regression"):
        next(batches(x, torch.eye(3)[torch.arange(6) % 3], 4))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mixlib.two_moons(n=16, test_size=0.01), r"test_size=0.01 holds out 1 of the 16 examples"),
        (lambda: mixlib.spirals(n=16, test_size=0.99), r"test_size=0.99 leaves 0 of the 16 examples for training"),
        (lambda: mixlib.regression_1d(n=16, test_size=0.99), r"leaves 0 of the 16 examples for training"),
    ],
)
def test_a_test_size_that_leaves_a_side_without_examples_gets_mixlibs_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    assert len(mixlib.regression_1d(n=16, test_size=0.01).y_test) == 1  # one test example is a valid split
