"""mixlib: the small PyTorch library behind the course book on mixup and manifold mixup.

The modules mirror the chapters: :mod:`~mixlib.data` (datasets that ship with packages),
:mod:`~mixlib.mixing` (mixing weights, pairings, mixed losses), :mod:`~mixlib.manifold`
(models split into stages; mixing at a hidden layer), :mod:`~mixlib.gradients` (the
four-term decomposition), :mod:`~mixlib.flatness` (singular values, chords),
:mod:`~mixlib.train`, :mod:`~mixlib.plot` and :mod:`~mixlib.exercises` (checkers).
"""

from .data import Split, digits, regression_1d, spirals, two_moons
from .seeding import device, make_generator, seed_everything

__all__ = [
    "Split", "digits", "regression_1d", "spirals", "two_moons",
    "device", "make_generator", "seed_everything",
]
__version__ = "0.1.0"
