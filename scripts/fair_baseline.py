"""Compute and store chapter 6's results: every arm on every draw, and the regime search.

Usage::

    .venv/bin/python scripts/fair_baseline.py fair      # 13 arms x 5 draws x 4 lrs x 10 seeds (~10 min)
    .venv/bin/python scripts/fair_baseline.py regimes   # ERM and the two mixups in other regimes (~25 min)

``make results`` runs both (in parallel). They write ``mixlib/results/fair_baseline.json`` and
``mixlib/results/regimes.json``, which chapter 6 reads. The chapter reruns draw 0 of its key arms
and checks it against the stored file; ``tests/test_stored_results.py`` reruns one more draw of
every arm and one cell of each regime. Every run follows :mod:`mixlib.fair`'s protocol: the
learning rate and the stopping epoch of each arm are chosen on a held-out fifth of the (noisy)
training set, and each seed's model is measured at that epoch.
"""

from __future__ import annotations

import sys
import time

from mixlib import fair

# name: (label noise, clean labels per class or None, longest run in epochs, network, learning rates)
REGIMES = {
    "clean": (0.0, None, 60, "mlp", fair.LRS),
    "20 % noise": (0.2, None, 60, "mlp", fair.LRS),
    "60 % noise": (0.6, None, 60, "mlp", fair.LRS),
    "5 per class": (0.0, 5, 300, "mlp", fair.LRS),
    "10 per class": (0.0, 10, 300, "mlp", fair.LRS),
    "30 per class": (0.0, 30, 200, "mlp", fair.LRS),
    "40 % noise, 200 epochs": (0.4, None, 200, "mlp", fair.LRS),
    "40 % noise, conv net": (0.4, None, 40, "conv", fair.LRS[:3]),
}
REGIME_ARMS = ("ERM", "input mixup", "manifold mixup")
REGIME_DRAWS = (0, 1, 2)
# The long run also trains the two squared-loss arms of the degeneracy theorem.
LONG_RUN_ARMS = (*REGIME_ARMS, "ERM, squared", "last layer, squared")


def regime_cell(regime: str, arm: str, draw: int) -> fair.Scored:
    """One arm on one draw of one regime of :data:`REGIMES`."""
    noise, per_class, epochs, net, lrs = REGIMES[regime]
    data, clean_labels = fair.noisy_digits(draw, noise, per_class)
    return fair.run_arm(arm, data, clean_labels if noise else None, epochs=epochs, lrs=lrs,
                        build_net=fair.conv_net if net == "conv" else fair.build)


def main(what: str) -> int:
    start = time.time()
    if what == "fair":
        results = fair.run_draws(fair.ARMS, fair.DRAWS)
        meta = {"draws": list(fair.DRAWS), "seeds": list(fair.SEEDS), "lrs": list(fair.LRS),
                "epochs": fair.EPOCHS, "noise": fair.NOISE}
        print(fair.save("fair_baseline", results, meta), f"{time.time() - start:.0f} s")
        return 0
    if what == "regimes":
        results: dict[str, dict[str, dict[int, fair.Scored]]] = {}
        for regime in REGIMES:
            arms = LONG_RUN_ARMS if "200 epochs" in regime else REGIME_ARMS
            results[regime] = {arm: {d: regime_cell(regime, arm, d) for d in REGIME_DRAWS} for arm in arms}
            print(f"{regime}: done at {time.time() - start:.0f} s", flush=True)
        meta = {"draws": list(REGIME_DRAWS), "seeds": list(fair.SEEDS),
                "regimes": {k: {"noise": v[0], "per_class": v[1], "epochs": v[2], "network": v[3], "lrs": list(v[4])}
                            for k, v in REGIMES.items()}}
        print(fair.save("regimes", results, meta), f"{time.time() - start:.0f} s")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
