"""Compute and store chapter 7's results: every arm of :mod:`mixlib.fair_routes` on every draw.

Usage::

    .venv/bin/python scripts/fair_routes.py run 0 2 4        # these draws, into a part file (~9 min a draw)
    .venv/bin/python scripts/fair_routes.py remeasure 0 2 4  # only the measurements, from the stored choices
    .venv/bin/python scripts/fair_routes.py merge            # the part files into mixlib/results/fair_routes.json

``make results`` runs the draws in two processes and merges them. For each draw and arm: the arm
is trained under chapter 6's protocol (the learning rate and stopping epoch chosen on held-out noisy
training data), each seed's model is retrained alone to the chosen epoch, checked to give the stored
test accuracy exactly, and measured (:func:`mixlib.fair_routes.measure`); every arm is also trained
and measured at ERM's chosen learning rate and epoch (:func:`mixlib.fair_routes.matched`), to compare
flatness at one training budget. The untrained networks and ERM trained to the last epoch are
measured too. ``remeasure`` redoes only the measurements, from the stored choices (after a change to
:func:`~mixlib.fair_routes.measure`).
"""

from __future__ import annotations

import sys
import time

import torch

from mixlib import fair, fair_routes
from mixlib.seeding import seed_everything

NAME = "fair_routes"


def tune_draw(setup: fair_routes.Setup) -> dict[str, fair.Scored]:
    """Every arm on one draw under chapter 6's protocol."""
    start, scored = time.time(), {}
    for name in fair_routes.ARMS:
        scored[name] = fair_routes.run_arm(name, setup)
        print(f"draw {setup.draw} {name}: lr {scored[name].lr:g}, epoch {scored[name].epoch}, "
              f"accuracy {sum(scored[name].accuracy) / len(fair.SEEDS):.4f} at {time.time() - start:.0f} s", flush=True)
    return scored


def measure_draw(setup: fair_routes.Setup, scored: dict[str, fair.Scored]) -> tuple[dict, dict, fair.Scored]:
    """``(measures, matched, not_stopped)`` for one draw.

    ``measures[arm]``: each arm's models where the protocol stopped them (retrained and checked to give
    the stored accuracy exactly); ``matched[arm]``: each arm trained at ERM's chosen ``(lr, epoch)``;
    both with the untrained networks as ``"untrained"``; and ERM not stopped.
    """
    measures, matched = {}, {}
    erm = scored["ERM"]
    for name in fair_routes.ARMS:
        models = fair_routes.checkpoints(name, setup, scored[name].lr, scored[name].epoch)
        measures[name] = fair_routes.measure(models, setup)
        if measures[name]["accuracy"] != scored[name].accuracy:
            raise RuntimeError(f"draw {setup.draw}, {name}: retrained checkpoints differ from the sweep's models")
        matched[name] = fair_routes.measure(fair_routes.matched(name, setup, erm.lr, erm.epoch), setup)
        print(f"draw {setup.draw} {name}: measured", flush=True)
    not_stopped, measures[fair_routes.NOT_STOPPED] = fair_routes.not_stopped(setup, erm)
    untrained = []
    for s in fair.SEEDS:
        seed_everything(s)
        untrained.append(fair.build())
    measures["untrained"] = matched["untrained"] = fair_routes.measure(untrained, setup)
    return measures, matched, not_stopped


def save_part(draws: list[int], done: list[int], scored: dict, measures: dict, matched: dict) -> None:
    print(fair.save(f"{NAME}.part-" + "-".join(map(str, draws)),
                    {"scored": scored, "measures": measures, "matched": matched}, {"draws": done}), flush=True)


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    if argv[:1] in (["run"], ["remeasure"]) and len(argv) > 1:
        draws = [int(d) for d in argv[1:]]
        stored = fair.load(NAME)[0]["scored"] if argv[0] == "remeasure" else None
        scored: dict[str, dict[int, fair.Scored]] = {}
        measures: dict[str, dict[int, dict]] = {}
        matched: dict[str, dict[int, dict]] = {}
        for k, draw in enumerate(draws):
            setup = fair_routes.prepare(draw)
            here = tune_draw(setup) if stored is None else {name: stored[name][draw] for name in fair_routes.ARMS}
            m, mm, here[fair_routes.NOT_STOPPED] = measure_draw(setup, here)
            for table, values in ((scored, here), (measures, m), (matched, mm)):
                for name, value in values.items():
                    table.setdefault(name, {})[draw] = value
            save_part(draws, draws[:k + 1], scored, measures, matched)  # after every draw: a stopped run keeps it
        return 0
    if argv[:1] == ["merge"]:
        parts = sorted(fair.results_path(NAME).parent.glob(f"{NAME}.part-*.json"))
        merged: dict[str, dict] = {"scored": {}, "measures": {}, "matched": {}}
        draws = []
        for path in parts:
            results, meta = fair.load(path.stem)
            draws += meta["draws"]
            for key, table in merged.items():
                for name, by_draw in results[key].items():
                    table.setdefault(name, {}).update({d: v for d, v in by_draw.items() if d in meta["draws"]})
        if sorted(draws) != list(fair_routes.DRAWS):
            raise SystemExit(f"the parts hold draws {sorted(draws)}, not {list(fair_routes.DRAWS)}")
        meta = {"draws": sorted(draws), "seeds": list(fair.SEEDS), "lrs": list(fair.LRS), "epochs": fair.EPOCHS,
                "noise": fair.NOISE, "weights": list(fair_routes.WEIGHTS), "angles": list(fair_routes.ANGLES)}
        print(fair.save(NAME, merged, meta))
        for path in parts:
            path.unlink()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
