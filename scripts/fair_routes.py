"""Compute and store chapter 7's results: every arm of :mod:`mixlib.fair_routes` on every draw.

Usage::

    .venv/bin/python scripts/fair_routes.py run 0 2 4   # these draws, into a part file (~6 min a draw)
    .venv/bin/python scripts/fair_routes.py merge       # the part files into mixlib/results/fair_routes.json

``make results`` runs the draws in two processes and merges them. For each draw and arm: the arm
is trained under chapter 6's protocol (the learning rate and stopping epoch chosen on held-out noisy
training data), each seed's model is retrained alone to the chosen epoch, checked to give the stored
test accuracy exactly, and measured (:func:`mixlib.fair_routes.measure`). The untrained networks and
ERM trained to the last epoch are measured too.
"""

from __future__ import annotations

import sys
import time

import torch

from mixlib import fair, fair_routes
from mixlib.seeding import seed_everything

NAME = "fair_routes"


def run_draw(draw: int) -> tuple[dict, dict]:
    """``({arm: Scored}, {arm: measures})`` for one draw."""
    start = time.time()
    setup = fair_routes.prepare(draw)
    scored, measures = {}, {}
    for name in fair_routes.ARMS:
        scored[name] = fair_routes.run_arm(name, setup)
        models = fair_routes.checkpoints(name, setup, scored[name].lr, scored[name].epoch)
        measures[name] = fair_routes.measure(models, setup)
        if measures[name]["accuracy"] != scored[name].accuracy:
            raise RuntimeError(f"draw {draw}, {name}: the retrained checkpoints do not reproduce the sweep's models")
        print(f"draw {draw} {name}: lr {scored[name].lr:g}, epoch {scored[name].epoch}, "
              f"accuracy {sum(scored[name].accuracy) / len(fair.SEEDS):.4f} at {time.time() - start:.0f} s", flush=True)
    scored[fair_routes.NOT_STOPPED], measures[fair_routes.NOT_STOPPED] = fair_routes.not_stopped(setup, scored["ERM"])
    untrained = []
    for s in fair.SEEDS:
        seed_everything(s)
        untrained.append(fair.build())
    measures["untrained"] = fair_routes.measure(untrained, setup)
    return scored, measures


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    if argv[:1] == ["run"] and len(argv) > 1:
        draws = [int(d) for d in argv[1:]]
        scored: dict[str, dict[int, fair.Scored]] = {}
        measures: dict[str, dict[int, dict]] = {}
        for draw in draws:
            s, m = run_draw(draw)
            for name in s:
                scored.setdefault(name, {})[draw] = s[name]
            for name in m:
                measures.setdefault(name, {})[draw] = m[name]
            done = draws[:draws.index(draw) + 1]  # saved after every draw, so a stopped run keeps what it did
            print(fair.save(f"{NAME}.part-" + "-".join(map(str, draws)), {"scored": scored, "measures": measures},
                            {"draws": done}), flush=True)
        return 0
    if argv[:1] == ["merge"]:
        parts = sorted(fair.results_path(NAME).parent.glob(f"{NAME}.part-*.json"))
        scored, measures, draws = {}, {}, []
        for path in parts:
            results, meta = fair.load(path.stem)
            draws += meta["draws"]
            for name, by_draw in results["scored"].items():
                scored.setdefault(name, {}).update(by_draw)
            for name, by_draw in results["measures"].items():
                measures.setdefault(name, {}).update(by_draw)
        if sorted(draws) != list(fair_routes.DRAWS):
            raise SystemExit(f"the parts hold draws {sorted(draws)}, not {list(fair_routes.DRAWS)}")
        meta = {"draws": sorted(draws), "seeds": list(fair.SEEDS), "lrs": list(fair.LRS), "epochs": fair.EPOCHS,
                "noise": fair.NOISE, "weights": list(fair_routes.WEIGHTS), "angles": list(fair_routes.ANGLES)}
        print(fair.save(NAME, {"scored": scored, "measures": measures}, meta))
        for path in parts:
            path.unlink()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
