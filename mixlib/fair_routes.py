"""Chapter 7's experiment: the explicit routes to flatness under chapter 6's fair protocol.

Every arm here is trained and stopped exactly as :mod:`mixlib.fair` trains and stops chapter 6's
arms (:func:`mixlib.tuning.tune_and_score`: the learning rate and the stopping epoch chosen on a
held-out fifth of the noisy training set, ten paired seeds, five split-and-noise draws), so ERM is
a tuned, early-stopped ERM. The arms are chapter 6's ERM, input mixup, manifold mixup and its
last-layer-only variant, and the routes of :mod:`mixlib.routes`: reconstruction and linearisation,
each at every weight of :data:`WEIGHTS` (a within-route sweep), and input mixup whose mixed input
comes from the learned interpolator (pixel mixing plus the decoder's bend, :data:`BENT`).

Each model is then measured where it was stopped, for accuracy *and* flatness (:func:`measure`):
the feature bend along test chords split into the head's row space and the rest, the logit bend,
the class dimension and the sensitivity to a 30 degree rotation. The models are not kept: seed
``s``'s model at ``(lr, epoch)`` is the same model whether it was recorded during the whole sweep or
comes from the same sweep stopped at ``epoch`` (:func:`checkpoints` retrains it, and the script, the
chapter and the tests check the accuracy is the stored one to the last digit).

``scripts/fair_routes.py`` runs every arm on every draw and stores the result in
``mixlib/results/fair_routes.json``, which chapter 7 reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import fair
from .data import Split
from .ensemble import fit_ensemble
from .flatness import chord_deviation, class_dimension, head_split_bend, sensitivity_ratio
from .manifold import StagedNet
from .routes import (
    Interpolator,
    Linearisation,
    Reconstruction,
    chord_pairs,
    curvature_loss,
    train_interpolators,
    transformed_digits,
)
from .seeding import seed_everything
from .tuning import Scored, crossfit_nll, holdout_split, tune_and_score

__all__ = [
    "DRAWS", "WEIGHTS", "ANGLES", "BENT", "ARMS", "NOT_STOPPED", "MEASURES", "Setup", "prepare", "run_arm",
    "checkpoints", "matched", "measure", "not_stopped", "tuned_weight",
]

DRAWS = fair.DRAWS
#: The weights of each route's sweep (beta for reconstruction, gamma for linearisation).
WEIGHTS = (0.01, 0.1, 1.0, 10.0)
#: The rotation angles of the linearisation route's trajectories (degrees).
ANGLES = (-30, -20, -10, 0, 10, 20, 30)
#: The arm that mixes inputs along the learned interpolator (pixel mixing plus the decoder's bend).
BENT = "mixup + decoder bend"
#: ERM at its chosen learning rate, trained for all of ``fair.EPOCHS`` epochs (the baseline nobody stopped).
NOT_STOPPED = "ERM, not stopped"
INTERPOLATOR_EPOCHS = 20
DECODER_HIDDEN = 128
TRIPLES = 32
#: What :func:`measure` records for each model.
MEASURES = ("accuracy", "nll", "memorised", "bend", "head bend", "rest bend", "logit bend", "class dim",
            "rotation", "rotation curvature", "top share", "rotation alignment")


def _arms() -> dict[str, tuple[str, Any]]:
    arms: dict[str, tuple[str, Any]] = {name: ("recipe", fair.ARMS[name])
                                        for name in ("ERM", "input mixup", "manifold mixup", "last layer")}
    for w in WEIGHTS:
        arms[f"reconstruction β={w:g}"] = ("reconstruct", w)
    for w in WEIGHTS:
        arms[f"linearisation γ={w:g}"] = ("linearize", w)
    arms[BENT] = ("interpolate", 1.0)
    return arms


#: Each arm's name and ``(kind, setting)``, a chapter 6 recipe, a route with its weight, or the
#: interpolator with its Beta parameter.
ARMS: dict[str, tuple[str, Any]] = _arms()


@dataclass(frozen=True)
class Setup:
    """One data draw and what the routes need on it.

    Attributes:
        draw: the draw number.
        data: ``fair.noisy_digits(draw)``'s split (40 % wrong training labels, clean test labels).
        clean: the training labels before corruption.
        trajectories: every image of the *fitting* part (the rows :func:`~mixlib.tuning.holdout_split`
            keeps) rotated by each of :data:`ANGLES`, ``(n_fit, len(ANGLES), 64)``: row ``i`` belongs
            to the fitting part's row ``i``, as the linearisation loss indexes them.
        interpolator: one :class:`~mixlib.routes.Interpolator` per seed, trained on the fitting part's
            images alone (no labels, none of the held-out rows).
    """

    draw: int
    data: Split
    clean: torch.Tensor
    trajectories: torch.Tensor
    interpolator: Interpolator


def prepare(draw: int) -> Setup:
    """The :class:`Setup` of ``draw``."""
    data, clean = fair.noisy_digits(draw)
    fitting = holdout_split(data).x_train
    interpolator = train_interpolators(fitting, list(fair.SEEDS), epochs=INTERPOLATOR_EPOCHS)
    return Setup(draw, data, clean, transformed_digits(fitting, ANGLES), interpolator)


def _training(name: str, setup: Setup, member_seeds: Sequence[int]) -> tuple[dict[str, Any], nn.Module | None]:
    """The recipe fields and the extra loss that train arm ``name`` for members with ``member_seeds``.

    ``member_seeds`` repeats :data:`mixlib.fair.SEEDS` once per learning rate (the sweep's order),
    so the interpolator is repeated as many times; a route's decoder or rotation stream belongs to the
    member's seed, so member ``(lr, s)`` gets seed ``s``'s whatever its learning rate.
    """
    if name not in ARMS:
        raise ValueError(f"unknown arm {name!r}; the arms are {list(ARMS)}")
    kind, setting = ARMS[name]
    width = fair.build().head.in_features
    if kind == "recipe":
        return dict(setting), None
    if kind == "reconstruct":
        return {"method": "erm"}, Reconstruction(member_seeds, width, setup.data.x_train.shape[1], DECODER_HIDDEN,
                                                 setting)
    if kind == "linearize":
        return {"method": "erm"}, Linearisation(member_seeds, setup.trajectories, setting, TRIPLES)
    times, rest = divmod(len(member_seeds), len(fair.SEEDS))
    if rest or list(member_seeds) != list(fair.SEEDS) * times:
        raise ValueError("the interpolator arm trains fair.SEEDS, once per learning rate")
    return {"method": "input", "alpha": setting, "interpolate": setup.interpolator.repeat(times)}, None


def run_arm(name: str, setup: Setup) -> Scored:
    """Arm ``name`` on ``setup``'s draw under chapter 6's protocol (:func:`mixlib.fair.run_arm`'s settings)."""
    spec, extra = _training(name, setup, list(fair.SEEDS) * len(fair.LRS))
    return tune_and_score(fair.build, setup.data, spec, seeds=fair.SEEDS, lrs=fair.LRS, epochs=fair.EPOCHS,
                          clean_labels=setup.clean, extra_loss=extra, batch_size=fair.BATCH)


def checkpoints(name: str, setup: Setup, lr: float, epoch: int) -> list[StagedNet]:
    """Each seed's model of arm ``name`` at learning rate ``lr`` after ``epoch`` epochs, on the fitting part.

    These are the models :func:`run_arm` measured when it chose ``(lr, epoch)``, bit for bit: the whole
    sweep (every learning rate of ``fair.LRS``, every seed) is trained again as one ensemble,
    stopped after ``epoch`` epochs, and the members of ``lr`` are returned. Training those members
    alone would start from the same weights and see the same mini-batches, but an ensemble of another
    size adds its floating-point numbers in another order, and after many epochs a few test
    predictions can differ.
    """
    if lr not in fair.LRS:
        raise ValueError(f"lr must be one of the sweep's learning rates {fair.LRS}, got {lr!r}")
    models = _trained(name, setup, list(fair.SEEDS) * len(fair.LRS),
                      [rate for rate in fair.LRS for _ in fair.SEEDS], epoch)
    first = fair.LRS.index(lr) * len(fair.SEEDS)
    return models[first:first + len(fair.SEEDS)]


def measure(models: Sequence[StagedNet], setup: Setup, n_pairs: int = 200) -> dict[str, list[float]]:
    """Accuracy and flatness of each model on ``setup``'s clean test set, one list entry per model.

    - ``accuracy``, ``nll`` (after a cross-fitted temperature, :func:`~mixlib.tuning.crossfit_nll`) and
      ``memorised`` (the share of the fitting part's wrong labels the model predicts), as
      :func:`~mixlib.tuning.tune_and_score` measures them;
    - ``bend``, ``head bend``, ``rest bend``: :func:`~mixlib.flatness.head_split_bend` of the features
      along ``n_pairs`` chords between test digits (:func:`~mixlib.routes.chord_pairs`), averaged;
    - ``logit bend``: :func:`~mixlib.flatness.chord_deviation` of the whole model along the same chords;
    - ``class dim``: :func:`~mixlib.flatness.class_dimension` of the test features;
    - ``rotation``: :func:`~mixlib.flatness.sensitivity_ratio` of the features for every test digit
      rotated by 30 degrees;
    - ``rotation curvature``: :func:`~mixlib.routes.curvature_loss` of the features along each test
      digit rotated through :data:`ANGLES`, averaged over the consecutive triples (what linearisation asks
      to be small);
    - ``top share``: per class, the share of the within-class variance of the test features along its
      first principal direction, averaged over the classes;
    - ``rotation alignment``: per class, ``|cos|`` between that first direction and the class's mean
      feature step of a 10 degree rotation (from 0 to 10 degrees), averaged over the classes.
    """
    data = setup.data
    pairs = chord_pairs(len(data.x_test), n_pairs)
    x, x2 = data.x_test[pairs[:, 0]], data.x_test[pairs[:, 1]]
    turned = transformed_digits(data.x_test, [30])[:, 0]
    paths = transformed_digits(data.x_test, ANGLES)  # (n_test, len(ANGLES), 64)
    upright = ANGLES.index(0)
    fitting = holdout_split(data)
    clean_fit = holdout_split(Split(data.x_train, setup.clean, data.x_test, data.y_test, data.num_classes)).y_train
    wrong = fitting.y_train != clean_fit
    out: dict[str, list[float]] = {m: [] for m in MEASURES}
    for model in models:
        with torch.no_grad():
            logits = model(data.x_test)
            h = model.features(data.x_test)
            fitted = model(fitting.x_train[wrong]).argmax(-1) == fitting.y_train[wrong]
            split = head_split_bend(model, x, x2)
            along = model.features(paths.reshape(-1, paths.shape[-1])).reshape(*paths.shape[:2], -1)
            top, aligned = _top_direction(h, along[:, upright + 1] - along[:, upright], data.y_test)
            row = {
                "accuracy": float((logits.argmax(-1) == data.y_test).double().mean()),
                "nll": crossfit_nll(logits, data.y_test),
                "memorised": float(fitted.double().mean()),
                "bend": float(split["full"].mean()),
                "head bend": float(split["head"].mean()),
                "rest bend": float(split["rest"].mean()),
                "logit bend": float(chord_deviation(model, x, x2).mean()),
                "class dim": float(class_dimension(h, data.y_test)),
                "rotation": sensitivity_ratio(model.features, data.x_test, turned),
                "rotation curvature": float(curvature_loss(along[:, :-2], along[:, 1:-1], along[:, 2:]).mean()),
                "top share": top,
                "rotation alignment": aligned,
            }
        for m in MEASURES:
            out[m].append(row[m])
    return out


def _top_direction(h: torch.Tensor, step: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean over classes of the top principal direction's variance share, and its ``|cos|`` with the mean ``step``."""
    shares, cosines = [], []
    for c in labels.unique():
        rows = h[labels == c].double()
        _, s, vh = torch.linalg.svd(rows - rows.mean(0), full_matrices=False)
        shares.append(float(s[0] ** 2 / s.pow(2).sum()))
        mean_step = step[labels == c].double().mean(0)
        cosines.append(float((vh[0] @ mean_step).abs() / mean_step.norm().clamp_min(1e-12)))
    return sum(shares) / len(shares), sum(cosines) / len(cosines)


def matched(name: str, setup: Setup, lr: float, epoch: int) -> list[StagedNet]:
    """Each seed's model of arm ``name`` trained alone at learning rate ``lr`` for ``epoch`` epochs.

    For comparing flatness at one training budget: every arm trained with the same ``(lr, epoch)``
    (ERM's choice on the draw, say) differs from ERM only in its loss, not in how long or how fast it
    trained. Same initial weights, mini-batches and streams as :func:`checkpoints`; not its models.
    """
    return _trained(name, setup, list(fair.SEEDS), lr, epoch)


def _trained(name: str, setup: Setup, seeds: list[int], lr: float | list[float], epoch: int) -> list[StagedNet]:
    """Arm ``name``'s members for ``seeds`` (each built after ``seed_everything``), trained on the fitting part."""
    spec, extra = _training(name, setup, seeds)
    models = []
    for s in seeds:
        seed_everything(s)
        models.append(fair.build())
    fitting = holdout_split(setup.data)
    fit_ensemble(models, fitting.x_train, fitting.y_train, seeds=seeds, lr=lr, epochs=epoch, batch_size=fair.BATCH,
                 extra_loss=extra, progress=False, **spec)
    return models


def tuned_weight(scored: Mapping[str, Mapping[int, Scored]], arms: Sequence[str]) -> dict[int, Scored]:
    """A route with its weight chosen like its learning rate: per draw, the arm of ``arms`` (one route at
    several weights) whose chosen ``(lr, epoch)`` has the best mean held-out accuracy (ties to the first)."""
    draws = sorted(set.intersection(*(set(scored[a]) for a in arms)))
    return {d: max((scored[a][d] for a in arms), key=lambda s: s.heldout) for d in draws}


def not_stopped(setup: Setup, erm: Scored) -> tuple[Scored, dict[str, list[float]]]:
    """ERM at its chosen learning rate trained for every one of ``fair.EPOCHS`` epochs, and its measures.

    Returned as a :class:`~mixlib.tuning.Scored` (``epoch = fair.EPOCHS``, the held-out accuracy of
    that last epoch, no curves) so that it enters the same contrasts as the stopped arms.
    """
    models = checkpoints("ERM", setup, erm.lr, fair.EPOCHS)
    measured = measure(models, setup)
    scored = Scored(erm.lr, fair.EPOCHS, erm.curves[erm.lr][-1], measured["accuracy"], measured["nll"],
                    measured["memorised"], {}, [])
    return scored, measured
