"""Chapter 6's experiment: every arm against a tuned, early-stopped ERM, over several data draws.

One place declares the arms, the data draws and the protocol, so that the chapter (which runs
draw 0 itself) and ``scripts/fair_baseline.py`` (which runs every draw and the regime search, and
stores them under ``mixlib/results/``) train exactly the same thing. ``tests/test_stored_results.py``
reruns part of the stored results and checks they are what this code produces.

The protocol, for every arm alike (:func:`mixlib.tuning.tune_and_score`): a fifth of the
(noisy) training set is held out; the arm trains on the rest for each learning rate in
``LRS`` and each of the ten ``SEEDS``; the learning rate and the epoch with the best mean
held-out accuracy are chosen; each seed's model, as it was at that epoch, is measured on the clean
test set.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from scipy import stats
from torch import nn

from .data import Split, corrupt_labels, digits
from .manifold import StagedNet, mlp
from .stats import Stat, equivalence_p, holm, noninferiority_p, over_draws, p_value
from .surrogate import InputCurvature
from .tuning import Scored, tune_and_score

__all__ = [
    "SEEDS", "DRAWS", "LRS", "EPOCHS", "NOISE", "ARMS", "build", "conv_net", "noisy_digits", "largest_entry_smoothing",
    "run_arm", "run_draws", "results_path", "save", "load", "contrast", "Verdict", "judge", "MARGIN",
]

SEEDS = tuple(range(10))
DRAWS = (0, 1, 2, 3, 4)  # split-and-noise draws: draw j is digits(seed=j) with its own label noise
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
EPOCHS = 100
NOISE = 0.4
BATCH = 64


def largest_entry_smoothing(alpha: float, num_classes: int = 10) -> float:
    """The label smoothing whose largest target entry is a mixed target's mean largest entry.

    A mixed one-hot target has largest entry ``max(lam, 1 - lam)``; smoothing by ``eps`` gives
    ``1 - eps + eps / C``. Setting them equal in the mean over Beta(alpha, alpha) gives ``eps``.
    """
    top = stats.beta(alpha, alpha).expect(lambda lam: max(lam, 1 - lam))
    return float((1 - top) * num_classes / (num_classes - 1))


MM = {"method": "manifold", "alpha": 2.0}
LAST = {"layers": (2,)}
SQUARED = {"loss": "mse"}

#: Each arm's name and its recipe fields; the arm named "surrogate" also gets an
#: :class:`~mixlib.surrogate.InputCurvature` extra loss.
ARMS: dict[str, dict[str, Any]] = {
    "ERM": {"method": "erm"},
    "input mixup": {"method": "input", "alpha": 1.0},
    "manifold mixup": MM,
    "last layer": {**MM, **LAST},
    "targets only": {"method": "target", "alpha": 2.0},
    "hard labels": {**MM, "targets": "dominant"},
    "last layer, hard labels": {**MM, **LAST, "targets": "dominant"},
    "label smoothing 0.35": {"method": "erm", "label_smoothing": largest_entry_smoothing(2.0)},
    "label smoothing 0.5": {"method": "erm", "label_smoothing": 0.5},
    "label smoothing 0.28": {"method": "erm", "label_smoothing": largest_entry_smoothing(1.0)},
    "surrogate": {"method": "erm", "label_smoothing": largest_entry_smoothing(1.0)},
    "ERM, squared": {"method": "erm", **SQUARED},
    "last layer, squared": {**MM, **LAST, **SQUARED},
    "expected loss, squared": {**MM, **LAST, **SQUARED, "terms": "expected"},
    "pairing noise, squared": {**MM, **LAST, **SQUARED, "terms": "fluctuation"},
}


def build() -> StagedNet:
    """The network of every arm: 64 -> 64 -> 64 -> 10, ReLU, layers 0 (input), 1 and 2."""
    return mlp(64, [64, 64], 10)


def conv_net() -> StagedNet:
    """A small convolutional network on the 8 x 8 images, for the regime search.

    Layer 0 is the image, layer 1 sixteen 8 x 8 feature maps, layer 2 thirty-two 4 x 4 maps
    (flattened), layer 3 a 64-wide dense layer that the linear head reads.
    """
    return StagedNet(
        [nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()),
         nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten()),
         nn.Sequential(nn.Linear(512, 64), nn.ReLU())],
        nn.Linear(64, 10),
    )


def noisy_digits(draw: int, noise: float = NOISE, per_class: int | None = None) -> tuple[Split, torch.Tensor]:
    """Draw ``draw`` of the data: ``digits(seed=draw)`` with a share ``noise`` of wrong training
    labels (chosen with the same seed), and the clean training labels."""
    clean = digits(seed=draw, per_class=per_class)
    data = corrupt_labels(clean, noise, seed=draw) if noise else clean
    return data, clean.y_train


def run_arm(name: str, data: Split, clean_labels: torch.Tensor | None, *, arms: Mapping[str, dict] = ARMS,
            build_net: Any = build, lrs: Iterable[float] = LRS, epochs: int = EPOCHS,
            seeds: Iterable[int] = SEEDS) -> Scored:
    """One arm on one data draw under the protocol of the module docstring."""
    if name not in arms:
        raise ValueError(f"unknown arm {name!r}; the arms are {list(arms)}")
    extra = InputCurvature(alpha=1.0) if name == "surrogate" else None
    return tune_and_score(build_net, data, arms[name], seeds=seeds, lrs=tuple(lrs), epochs=epochs,
                          clean_labels=clean_labels, extra_loss=extra, batch_size=BATCH)


def run_draws(names: Iterable[str], draws: Iterable[int] = DRAWS, **kwargs: Any) -> dict[str, dict[int, Scored]]:
    """``{arm: {draw: Scored}}`` for the named arms on the given draws of 40 % label noise."""
    names = list(names)
    out: dict[str, dict[int, Scored]] = {name: {} for name in names}
    for draw in draws:
        data, clean_labels = noisy_digits(draw)
        for name in names:
            out[name][draw] = run_arm(name, data, clean_labels, **kwargs)
    return out


def results_path(name: str) -> Path:
    """Where the stored result ``name`` lives: ``mixlib/results/<name>.json`` (shipped with the package)."""
    return Path(__file__).with_name("results") / f"{name}.json"


def _encode(value: Any, trajectories: bool) -> Any:
    if isinstance(value, Scored):
        # The held-out curves only document the choice: five decimals keep them readable and small.
        curves = {repr(k): [round(v, 5) for v in curve] for k, curve in value.curves.items()}
        return {"__scored__": {**asdict(value), "curves": curves,
                               "trajectory": value.trajectory if trajectories else []}}
    if isinstance(value, dict):
        return {str(k): _encode(v, trajectories) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, trajectories) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__scored__" in value:
        fields = dict(value["__scored__"])
        fields["curves"] = {float(k): v for k, v in fields["curves"].items()}
        return Scored(**fields)
    if isinstance(value, dict):
        return {(int(k) if k.lstrip("-").isdigit() else k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(name: str, results: Mapping[str, Any], meta: Mapping[str, Any], *, trajectories: bool = False) -> Path:
    """Write ``results`` (nested dicts of :class:`~mixlib.tuning.Scored` and numbers) with ``meta``.

    Each seed's test accuracy after every epoch (``Scored.trajectory``) is kept only with
    ``trajectories=True``: it is what a long run is for, and elsewhere it would make the file large.
    """
    path = results_path(name)
    path.parent.mkdir(exist_ok=True)
    payload = {"meta": dict(meta, torch=torch.__version__), "results": _encode(dict(results), trajectories)}
    path.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    return path


def load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(results, meta)`` stored by :func:`save` (draw numbers back as ints)."""
    path = results_path(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make results` to compute it")
    payload = json.loads(path.read_text())
    return _decode(payload["results"]), payload["meta"]


# ----------------------------------------------------------------------------------------------
# Reading the results: one rule for every claim

#: The equivalence margin, one point of test accuracy (set when the untuned gain was ten points).
MARGIN = 0.01


def contrast(results: Mapping[str, Mapping[int, Scored]], arm: str, baseline: str, metric: str = "accuracy") -> Stat:
    """``arm`` minus ``baseline`` in ``metric``, paired by seed within each draw, summarised over draws.

    Seed ``s`` of draw ``j`` of the two arms shares its data, initial weights and mini-batches,
    so the per-seed differences are paired; :func:`mixlib.stats.over_draws` then takes each draw's
    mean difference as one observation, so the interval counts the seeds and the draws.
    """
    for name in (arm, baseline):
        if name not in results:
            raise KeyError(f"no results for {name!r}; there are {sorted(results)}")
    draws = sorted(set(results[arm]) & set(results[baseline]))
    return over_draws([[a - b for a, b in zip(getattr(results[arm][d], metric), getattr(results[baseline][d], metric),
                                              strict=True)] for d in draws])


@dataclass(frozen=True)
class Verdict:
    """One claim's numbers and its verdict under Holm's correction over the whole family.

    ``verdict`` is ``"higher"`` or ``"lower"`` (the difference test rejects 0 after correction),
    ``"same"`` (the equivalence test puts the difference inside ``±margin`` after correction),
    ``"higher, within margin"`` / ``"lower, within margin"`` (both), or ``"undecided"`` (neither).
    """

    stat: Stat
    p_difference: float
    p_same: float
    verdict: str


def judge(results: Mapping[str, Mapping[int, Scored]], claims: Mapping[str, tuple[str, str]], *,
          margin: float = MARGIN, level: float = 0.05,
          at_least: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Verdict]:
    """Test every ``claims[name] = (arm, baseline)`` both ways, all tests in one Holm family.

    For each contrast (:func:`contrast`, test accuracy) there are two tests: Student's t test of
    "no difference" and the two one-sided tests of "a difference of at least ``margin``". All
    ``2 * len(claims)`` p-values are adjusted together by :func:`mixlib.stats.holm`, so the chance
    that *any* verdict in the family is a false "higher", "lower" or "same" is at most ``level``.
    The returned p-values are the adjusted ones.

    ``at_least[name] = (arm, baseline)`` adds one one-sided test each to the same family: "arm is
    not worse than baseline by more than ``margin``" (:func:`mixlib.stats.noninferiority_p`). Its
    :class:`Verdict` has ``p_difference`` NaN, the adjusted p-value as ``p_same``, and the verdict
    ``"not worse"`` or ``"undecided"``.
    """
    stats_ = {name: contrast(results, *pair) for name, pair in claims.items()}
    at_least = dict(at_least or {})
    raw = {}
    for name, stat in stats_.items():
        raw[(name, "difference")] = p_value(stat)
        raw[(name, "same")] = equivalence_p(stat, margin)
    one_sided = {name: contrast(results, *pair) for name, pair in at_least.items()}
    for name, stat in one_sided.items():
        raw[(name, "not worse")] = noninferiority_p(stat, margin)
    adjusted = holm({f"{k[0]} | {k[1]}": v for k, v in raw.items()})
    out = {}
    for name, stat in one_sided.items():
        p = adjusted[f"{name} | not worse"]
        out[name] = Verdict(stat, math.nan, p, "not worse" if p < level else "undecided")
    for name, stat in stats_.items():
        p_diff, p_same = adjusted[f"{name} | difference"], adjusted[f"{name} | same"]
        if p_diff < level:
            verdict = ("higher" if stat.mean > 0 else "lower") + (", within margin" if p_same < level else "")
        elif p_same < level:
            verdict = "same"
        else:
            verdict = "undecided"
        out[name] = Verdict(stat, p_diff, p_same, verdict)
    return out
