"""Compute and store chapter 6's results: every arm on every draw, and the regime search.

Usage::

    .venv/bin/python scripts/fair_baseline.py fair      # 15 arms x 5 draws x 5 lrs x 10 seeds (~25 min)
    .venv/bin/python scripts/fair_baseline.py regimes   # ERM and the two mixups in other regimes (~25 min)
    .venv/bin/python scripts/fair_baseline.py long      # four arms at lr 3e-3 for 200 epochs (~3 min)
    .venv/bin/python scripts/fair_baseline.py few       # the few-label regimes on ten fresh draws (~4 min)

``make results`` runs them all (two at a time). They write ``mixlib/results/fair_baseline.json``,
``regimes.json``, ``long_run.json`` and ``few_labels.json``, which chapter 6 reads. The chapter
reruns draw 0 of its key arms and checks it against the stored file; ``tests/test_stored_results.py``
reruns one more draw of every arm and one cell of each stored experiment. Every run follows
:mod:`mixlib.fair`'s protocol: the learning rate and the stopping epoch of each arm are chosen on
a held-out fifth of the (noisy) training set, and each seed's model is measured at that epoch.
"""

from __future__ import annotations

import sys
import time

from mixlib import fair

# The regime search's learning rates (the main table's grid was widened after the search ran).
SEARCH_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
# name: (label noise, clean labels per class or None, longest run in epochs, network, learning rates)
REGIMES = {
    "clean": (0.0, None, 60, "mlp", SEARCH_LRS),
    "20 % noise": (0.2, None, 60, "mlp", SEARCH_LRS),
    "60 % noise": (0.6, None, 60, "mlp", SEARCH_LRS),
    "5 per class": (0.0, 5, 300, "mlp", SEARCH_LRS),
    "10 per class": (0.0, 10, 300, "mlp", SEARCH_LRS),
    "30 per class": (0.0, 30, 200, "mlp", SEARCH_LRS),
    "40 % noise, 200 epochs": (0.4, None, 200, "mlp", SEARCH_LRS),
    "40 % noise, conv net": (0.4, None, 40, "conv", SEARCH_LRS[:3]),
}
REGIME_ARMS = ("ERM", "input mixup", "manifold mixup")
REGIME_DRAWS = (0, 1, 2)
# The long run also trains the two squared-loss arms of the degeneracy theorem.
LONG_RUN_ARMS = (*REGIME_ARMS, "ERM, squared", "last layer, squared")


# The long run at the old fixed setting (lr 3e-3): does the last-layer effect shrink as training fits?
LONG_RUN = {"lr": 3e-3, "epochs": 200, "draws": (0, 1, 2),
            "arms": ("ERM", "manifold mixup", "ERM, squared", "last layer, squared")}
# The regime search's best candidates, followed up on ten fresh draws (none of draws 0-2), with the
# arms that reproduced the noisy-label gain without mixing features.
FOLLOW_UP = {"regimes": ("5 per class", "10 per class"), "draws": tuple(range(3, 13)),
             "arms": (*REGIME_ARMS, "targets only", "label smoothing 0.35", "surrogate", "hard labels")}


def long_run_cell(arm: str, draw: int) -> fair.Scored:
    """One arm on one draw of 40 % noise at lr 3e-3 for 200 epochs (its trajectory is what counts)."""
    return fair.run_arm(arm, *fair.noisy_digits(draw), lrs=(LONG_RUN["lr"],), epochs=LONG_RUN["epochs"])


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
    if what == "long":
        results = {arm: {d: long_run_cell(arm, d) for d in LONG_RUN["draws"]} for arm in LONG_RUN["arms"]}
        meta = {"lr": LONG_RUN["lr"], "epochs": LONG_RUN["epochs"], "draws": list(LONG_RUN["draws"]),
                "seeds": list(fair.SEEDS)}
        print(fair.save("long_run", results, meta, trajectories=True), f"{time.time() - start:.0f} s")
        return 0
    if what == "few":
        results = {regime: {arm: {d: regime_cell(regime, arm, d) for d in FOLLOW_UP["draws"]}
                            for arm in FOLLOW_UP["arms"]} for regime in FOLLOW_UP["regimes"]}
        meta = {"draws": list(FOLLOW_UP["draws"]), "seeds": list(fair.SEEDS), "regimes": list(FOLLOW_UP["regimes"])}
        print(fair.save("few_labels", results, meta), f"{time.time() - start:.0f} s")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
