"""The stored results chapter 6 reads are what the code produces today.

``mixlib/results/*.json`` are written by ``make results`` (``scripts/fair_baseline.py``), which
takes half an hour. The chapter reruns draw 0 of its key arms; these tests rerun the last draw of
every arm and one cell of every regime, and compare with the file: same learning rate, same
stopping epoch, same per-seed measurements. A change to mixlib that moves any of them fails here,
and the fix is to run ``make results`` again (and to reread the chapter's text).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mixlib import fair

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fair_baseline", ROOT / "scripts" / "fair_baseline.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)

STORED, META = fair.load("fair_baseline")
REGIMES, REGIME_META = fair.load("regimes")


def _same(fresh: fair.Scored, stored: fair.Scored) -> None:
    assert (fresh.lr, fresh.epoch) == (stored.lr, stored.epoch)
    assert fresh.heldout == pytest.approx(stored.heldout, abs=1e-12)
    assert fresh.accuracy == pytest.approx(stored.accuracy, abs=1e-12)
    assert fresh.nll == pytest.approx(stored.nll, rel=1e-6)
    if stored.memorised is not None:
        assert fresh.memorised == pytest.approx(stored.memorised, abs=1e-12)


def test_the_stored_protocol_is_the_current_one():
    assert META["draws"] == list(fair.DRAWS) and META["seeds"] == list(fair.SEEDS)
    assert META["lrs"] == list(fair.LRS) and META["epochs"] == fair.EPOCHS and META["noise"] == fair.NOISE
    assert set(STORED) == set(fair.ARMS)
    assert all(set(STORED[arm]) == set(fair.DRAWS) for arm in fair.ARMS)
    assert set(REGIMES) == set(script.REGIMES)
    for regime, (noise, per_class, epochs, net, lrs) in script.REGIMES.items():
        assert REGIME_META["regimes"][regime] == {"noise": noise, "per_class": per_class, "epochs": epochs,
                                                  "network": net, "lrs": list(lrs)}


@pytest.mark.parametrize("arm", list(fair.ARMS))
def test_the_last_draw_of_every_arm_reruns_to_the_stored_numbers(arm):
    draw = fair.DRAWS[-1]
    _same(fair.run_arm(arm, *fair.noisy_digits(draw)), STORED[arm][draw])


@pytest.mark.parametrize("regime", list(script.REGIMES))
def test_one_cell_of_every_regime_reruns_to_the_stored_numbers(regime):
    arms = list(REGIMES[regime])
    index = list(script.REGIMES).index(regime)
    arm, draw = arms[index % len(arms)], script.REGIME_DRAWS[index % len(script.REGIME_DRAWS)]
    _same(script.regime_cell(regime, arm, draw), REGIMES[regime][arm][draw])


LONG, LONG_META = fair.load("long_run")
FEW, FEW_META = fair.load("few_labels")


def test_the_stored_follow_ups_are_the_current_ones():
    assert LONG_META == {"lr": script.LONG_RUN["lr"], "epochs": script.LONG_RUN["epochs"],
                         "draws": list(script.LONG_RUN["draws"]), "seeds": list(fair.SEEDS),
                         "torch": LONG_META["torch"]}
    assert set(LONG) == set(script.LONG_RUN["arms"])
    assert FEW_META["draws"] == list(script.FOLLOW_UP["draws"]) and set(FEW) == set(script.FOLLOW_UP["regimes"])
    assert not set(FEW_META["draws"]) & set(script.REGIME_DRAWS)  # fresh draws, not the search's


def test_one_cell_of_the_long_run_reruns_to_the_stored_numbers():
    _same(script.long_run_cell("last layer, squared", 1), LONG["last layer, squared"][1])


@pytest.mark.parametrize("regime", script.FOLLOW_UP["regimes"])
def test_one_cell_of_the_follow_up_reruns_to_the_stored_numbers(regime):
    draw = script.FOLLOW_UP["draws"][-1]
    _same(script.regime_cell(regime, "manifold mixup", draw), FEW[regime]["manifold mixup"][draw])
