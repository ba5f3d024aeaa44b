"""mixlib: the small PyTorch library behind the course book on mixup and manifold mixup.

The modules mirror the chapters: :mod:`~mixlib.data` (datasets that ship with packages),
:mod:`~mixlib.mixing` (mixing weights, pairings, mixed losses), :mod:`~mixlib.manifold`
(models split into stages; mixing at a hidden layer), :mod:`~mixlib.gradients` (the
four-term decomposition), :mod:`~mixlib.expansion_limits` (where that decomposition stops:
non-affine heads, a feature map it cannot see), :mod:`~mixlib.flatness` (singular values,
chords, class subspaces and distances),
:mod:`~mixlib.metrics`, :mod:`~mixlib.recipe` (the training loss of one mini-batch, declared
once), :mod:`~mixlib.train` (the training loop), :mod:`~mixlib.ensemble` (many seeds as one
model), :mod:`~mixlib.experiments` and :mod:`~mixlib.stats` (methods compared over seeds, paired
intervals), :mod:`~mixlib.tuning` (each arm's learning rate and stopping epoch chosen on held-out
training data), :mod:`~mixlib.routes` (explicit routes to a flat representation, as losses),
:mod:`~mixlib.fair` and :mod:`~mixlib.fair_routes` (chapters 6 and 7's experiments, whose results ship
under ``mixlib/results/``),
:mod:`~mixlib.plot` and :mod:`~mixlib.exercises` (checkers).

The names most used in the book are re-exported here, so that ``mixlib.sample_lambda`` is
:func:`mixlib.mixing.sample_lambda`, ``mixlib.mixup`` is :func:`mixlib.mixing.mixup` and
``mixlib.gradient_terms`` is :func:`mixlib.gradients.gradient_terms`.
"""

from .data import Split, corrupt_labels, digits, regression_1d, spirals, two_moons
from .flatness import chord_nonlinearity, chord_outputs, class_dimension, class_singular_values, flattening_summary
from .gradients import expected_mmix_loss, gradient_terms, mixing_constant, mmix_loss_monte_carlo
from .manifold import StagedNet, mix_at, mlp
from .mixing import (
    bce_on_softmax,
    mixed_cross_entropy,
    mixed_squared_loss,
    mixup,
    one_hot,
    random_pairing,
    sample_lambda,
    soft_cross_entropy,
)
from .seeding import device, make_generator, seed_everything
from .train import History, fit

__all__ = [
    "Split", "corrupt_labels", "digits", "regression_1d", "spirals", "two_moons",
    "chord_nonlinearity", "chord_outputs", "class_dimension", "class_singular_values", "flattening_summary",
    "expected_mmix_loss", "gradient_terms", "mixing_constant", "mmix_loss_monte_carlo",
    "StagedNet", "mix_at", "mlp",
    "bce_on_softmax", "mixed_cross_entropy", "mixed_squared_loss", "mixup", "one_hot", "random_pairing",
    "sample_lambda", "soft_cross_entropy",
    "device", "make_generator", "seed_everything",
    "History", "fit",
]
__version__ = "0.1.0"
