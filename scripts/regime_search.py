"""Where, if anywhere, do the mixups beat a *tuned, early-stopped* ERM on digits?

For each regime (label noise 0/20/40/60 %, or 5/10/30 clean labels per class), each of three
split-and-noise draws and each arm (ERM, input mixup, manifold mixup), :func:`mixlib.tuning.tune`
chooses the learning rate in {3e-4, 1e-3, 3e-3} and the stopping epoch on a held-out fifth of the
*training* set (its labels as they are), by the mean over ten seeds; the arm is then trained on the
whole training set with that choice, ten paired seeds, and measured on the test set. Each line
gives mixup minus ERM in test accuracy, with two 95 % t intervals: over the three draws' mean
differences (what counts: the draw is a source of variation too), and over all draw x seed pairs
(narrower; it ignores that seeds within a draw share their data).

Usage: ``.venv/bin/python scripts/regime_search.py`` (about ten minutes on two cores).
"""

from __future__ import annotations

import math
import sys

from scipy import stats

import mixlib
from mixlib.data import corrupt_labels
from mixlib.experiments import compare_methods
from mixlib.stats import summarize
from mixlib.tuning import tune

SEEDS = range(10)
DRAWS = (0, 1, 2)
LRS = (3e-4, 1e-3, 3e-3)
ARMS = {
    "ERM": {"method": "erm"},
    "input mixup": {"method": "input", "alpha": 1.0},
    "manifold mixup": {"method": "manifold", "alpha": 2.0},
}
REGIMES = {  # name: (label noise, clean labels per class or None for all, epochs)
    "clean": (0.0, None, 60),
    "20 % noise": (0.2, None, 60),
    "40 % noise": (0.4, None, 60),
    "60 % noise": (0.6, None, 60),
    "5 per class": (0.0, 5, 300),
    "10 per class": (0.0, 10, 300),
    "30 per class": (0.0, 30, 200),
}


def build() -> mixlib.manifold.StagedNet:
    return mixlib.mlp(64, [64, 64], 10)


def data_for(noise: float, per_class: int | None, draw: int) -> mixlib.Split:
    data = mixlib.digits(seed=draw, per_class=per_class)
    return corrupt_labels(data, noise, seed=draw) if noise else data


def over_draws(per_draw: list[float]) -> str:
    """Mean of the per-draw mean differences with its 95 % t interval over the draws."""
    n = len(per_draw)
    mean = sum(per_draw) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in per_draw) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]"


def main() -> int:
    print(__doc__.splitlines()[0])
    print(f"{len(SEEDS)} seeds x {len(DRAWS)} draws; lr from {LRS}; epoch chosen on held-out training data\n")
    for regime, (noise, per_class, epochs) in REGIMES.items():
        accuracy: dict[str, dict[int, list[float]]] = {arm: {} for arm in ARMS}
        chosen: dict[str, list[str]] = {arm: [] for arm in ARMS}
        for draw in DRAWS:
            data = data_for(noise, per_class, draw)
            for arm, spec in ARMS.items():
                choice = tune(build, data, spec, seeds=SEEDS, lrs=LRS, epochs=epochs, batch_size=64)
                runs = compare_methods(build, data, seeds=SEEDS, methods={arm: {**spec, "lr": choice.lr}},
                                       epochs=choice.epoch, batch_size=64, keep_models=False)
                accuracy[arm][draw] = runs.values(arm, "test_accuracy")
                chosen[arm].append(f"{choice.lr:g}@{choice.epoch}")
        erm = accuracy["ERM"]
        print(f"{regime}: ERM {summarize([a for d in DRAWS for a in erm[d]]).mean:.3f} "
              f"(lr@epoch per draw: {', '.join(chosen['ERM'])})")
        for arm in ("input mixup", "manifold mixup"):
            pairs = [a - b for d in DRAWS for a, b in zip(accuracy[arm][d], erm[d], strict=True)]
            per_draw = [sum(a - b for a, b in zip(accuracy[arm][d], erm[d], strict=True)) / len(SEEDS) for d in DRAWS]
            print(f"  {arm:15s} - ERM: over draws {over_draws(per_draw)}; over draw x seed pairs "
                  f"{summarize(pairs).interval()}  (lr@epoch: {', '.join(chosen[arm])})")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
