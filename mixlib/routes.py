"""Explicit routes to a flat representation: chapter 07's alternatives to manifold mixup, as losses.

Each route asks for flatness directly instead of hoping for it, and each is a change of the loss
that :func:`mixlib.ensemble.fit_ensemble` (or :func:`mixlib.train.fit`) trains, not a trainer of its own:

- **reconstruction** (:class:`Reconstruction`, an extra loss): a decoder must rebuild the input ``x``
  from the features ``F(x)``, so ``F`` keeps what distinguishes nearby inputs;
- **linearisation** (:class:`Linearisation`, an extra loss): on inputs with a known continuous
  parameter ``t`` (digits rotated by ``t`` steps, :func:`transformed_digits`), the features must
  move along a straight line in ``t`` (:func:`curvature_loss`);
- **a learned interpolator** (:class:`Interpolator`, the recipe's ``interpolate``): an autoencoder
  trained without labels proposes the in-between input that replaces ``lam x + (1 - lam) x'``.

Member ``k`` of a route is seed ``k`` of chapter 06: the same initial weights (the mlp built right
after ``torch.manual_seed(k)``) and the same mini-batches. :func:`compare_routes` trains every route
on every regime and measures each member (:func:`measure_members`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ._checks import check_lam, check_positive, check_positive_int, check_seed, check_seeds, check_tensor
from .data import Split
from .ensemble import StackedMLP, fit_ensemble, seeded_mlps
from .experiments import Comparison
from .flatness import chord_deviation, class_dimension
from .metrics import nll, reliability, score, temperature_for_nll

__all__ = [
    "ROUTES", "RouteConfig", "transformed_digits", "curvature_loss", "Reconstruction",
    "Linearisation", "Interpolator", "train_interpolators", "route_arm", "train_route", "measure_members",
    "chord_pairs", "compare_routes", "tell_apart",
]

#: The routes :func:`route_arm` knows: the three baselines and the three explicit routes.
ROUTES = ("erm", "input", "manifold", "reconstruct", "linearize", "interpolate")


def _stream(seed: int, k: int) -> int:
    """Seed ``seed``'s ``k``-th stream for something other than the classifier (decoders, draws)."""
    return seed + (k << 40)


def transformed_digits(images: torch.Tensor, ts: Sequence[float], kind: str = "rotate") -> torch.Tensor:
    """Each 8 x 8 digit rotated (or shifted) by every value of ``ts``.

    Args:
        images: Flattened digits, shape ``(n, 64)``, pixels in [0, 1] (as :func:`mixlib.data.digits` gives).
        ts: Angles in degrees for ``kind="rotate"``, horizontal shifts in pixels for ``kind="shift"``.
        kind: ``"rotate"`` (about the image centre) or ``"shift"`` (to the right for ``t > 0``).

    Returns:
        A float32 tensor ``(n, len(ts), 64)``: ``out[i, j]`` is image ``i`` transformed by ``ts[j]``
        (bilinear, zero outside the image, clipped to [0, 1]), on the device of ``images``.
    """
    images = check_tensor("images", images, min_dim=2)
    if images.dim() != 2 or images.shape[1] != 64:
        raise ValueError(f"images must have shape (n, 64), flattened 8 x 8 digits; got {tuple(images.shape)}")
    if kind not in ("rotate", "shift"):
        raise ValueError(f"kind must be 'rotate' or 'shift', got {kind!r}")
    try:
        ts = [float(t) for t in ts]
    except (TypeError, ValueError):
        raise TypeError(f"ts must be a sequence of numbers, got {ts!r}") from None
    if not ts or not all(math.isfinite(t) for t in ts):
        raise ValueError(f"ts must be one or more finite numbers, got {ts}")
    pictures = images.detach().cpu().double().numpy().reshape(-1, 8, 8)
    out = np.empty((pictures.shape[0], len(ts), 8, 8))
    for j, t in enumerate(ts):
        if kind == "rotate":
            out[:, j] = ndimage.rotate(pictures, t, axes=(2, 1), reshape=False, order=1, mode="constant")
        else:
            out[:, j] = ndimage.shift(pictures, (0, 0, t), order=1, mode="constant")
    result = torch.as_tensor(np.clip(out, 0.0, 1.0).reshape(-1, len(ts), 64), dtype=torch.float32)
    return result.to(images.device)


def curvature_loss(h_before: torch.Tensor, h: torch.Tensor, h_after: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """How badly linear extrapolation predicts the next point of a trajectory, relative to its step.

    Per row, ``||h_{t+1} - (2 h_t - h_{t-1})||^2 / (||h_{t+1} - h_t||^2 + ||h_t - h_{t-1}||^2 + eps)``:
    zero when the three points are equally spaced on a line, and unchanged when the features are
    scaled, so shrinking ``F`` cannot lower it. Shapes ``(..., d)``; the result is ``(...)``.
    """
    for name, t in (("h_before", h_before), ("h", h), ("h_after", h_after)):
        check_tensor(name, t, min_dim=1)
    if not h_before.shape == h.shape == h_after.shape:
        raise ValueError(f"h_before, h and h_after must have one shape, got {tuple(h_before.shape)}, "
                         f"{tuple(h.shape)}, {tuple(h_after.shape)}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    return _curvature(h_before, h, h_after, eps)


def _curvature(h_before: torch.Tensor, h: torch.Tensor, h_after: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    miss = (h_after - 2 * h + h_before).pow(2).sum(-1)
    step = (h_after - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1)
    return miss / (step + eps)


# ---------------------------------------------------------------------------------------------
# The routes as losses: x (K, B, d), one loss per member (K = 1 inside mixlib.fit)


class Reconstruction(nn.Module):
    """Extra loss ``weight * ||D(F(x)) - x||^2`` with a decoder ``D`` per member (trained with the classifier).

    Args:
        seeds: one per member; member ``k``'s decoder starts from a stream of ``seeds[k]``.
        width: the width of the features ``F(x)``; ``in_dim``: the input width.
        hidden: the decoder's hidden width; ``weight``: the weight of the loss.
    """

    def __init__(self, seeds: Sequence[int], width: int, in_dim: int, hidden: int = 128, weight: float = 1.0):
        super().__init__()
        self.decoder = StackedMLP.from_seeds([_stream(s, 3) for s in seeds], width, [hidden], in_dim)
        self.weight = float(weight)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """The rebuilt inputs, pixels in (0, 1), for features ``h`` ``(K, B, width)``."""
        return torch.sigmoid(self.decoder(h))

    def forward(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.weight * (self.decode(net.features(x)) - x).pow(2).sum(-1).mean(-1)


class Linearisation(nn.Module):
    """Extra loss ``weight * curvature`` of the features along a random triple of each trajectory.

    For the first ``triples`` examples of each mini-batch, three consecutive points of the example's
    trajectory (``trajectories[i]``, rows of the training set) are drawn from the member's own stream.
    """

    def __init__(self, seeds: Sequence[int], trajectories: torch.Tensor, weight: float = 1.0, triples: int = 32):
        super().__init__()
        self.trajectories, self.weight, self.triples = trajectories, float(weight), triples
        self.generators = [torch.Generator().manual_seed(_stream(s, 4)) for s in seeds]

    def forward(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        m, steps = min(index.shape[1], self.triples), self.trajectories.shape[1]
        centre = torch.stack([torch.randint(1, steps - 1, (m,), generator=g) for g in self.generators])
        offsets = torch.tensor([-1, 0, 1])
        points = self.trajectories[index[:, :m, None].cpu(), centre[..., None] + offsets].to(x.device)  # (K, m, 3, d)
        f = net.features(points.transpose(1, 2).reshape(len(index), 3 * m, -1)).reshape(len(index), 3, m, -1)
        return self.weight * _curvature(f[:, 0], f[:, 1], f[:, 2]).mean(-1)


class Interpolator(nn.Module):
    """K autoencoders that propose an input between two inputs.

    With encoder ``E`` and decoder ``D``, ``I(x, x', lam) = D(lam E(x) + (1 - lam) E(x'))
    + lam (x - D(E(x))) + (1 - lam) (x' - D(E(x')))``: the decoded mix of the codes plus the mix of
    the two reconstruction residuals, so ``I(x, x', 1) = x`` and ``I(x, x', 0) = x'`` exactly.
    Inputs ``(K, B, d)`` (or ``(B, d)`` for one member); ``lam`` a number, or per member ``(K,)``
    or per pair ``(K, B)`` (trailing singleton dims allowed).
    """

    def __init__(self, seeds: Sequence[int], in_dim: int = 64, hidden: int = 64, code: int = 12) -> None:
        super().__init__()
        self.encoder = StackedMLP.from_seeds([_stream(s, 1) for s in seeds], in_dim, [hidden], code)
        self.decoder = StackedMLP.from_seeds([_stream(s, 2) for s in seeds], code, [hidden], in_dim)
        self.size = len(seeds)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs, pixels in (0, 1), for codes ``z`` ``(K, B, code)``."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor, x2: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self(x[None], x2[None], lam)[0]
        if x.shape != x2.shape or len(x) != self.size:
            raise ValueError(f"x and x2 must both have shape ({self.size}, B, d); got {tuple(x.shape)}, "
                             f"{tuple(x2.shape)}")
        if isinstance(lam, torch.Tensor):
            if lam.shape[0] != self.size or lam.dim() > 3:
                raise ValueError(f"lam must hold one weight per member ({self.size},) or per pair, got "
                                 f"shape {tuple(lam.shape)}")
            lam = check_lam(lam).reshape(self.size, -1, 1).to(x.dtype)
        z, z2 = self.encoder(x), self.encoder(x2)
        residual, residual2 = x - self.decode(z), x2 - self.decode(z2)
        return self.decode(lam * z + (1 - lam) * z2) + lam * residual + (1 - lam) * residual2

    def repeat(self, times: int) -> Interpolator:
        """These K interpolators, repeated ``times`` times (members ``[0..K-1] * times``), frozen."""
        out = Interpolator([0] * (self.size * check_positive_int("times", times)), self.encoder.weight[0].shape[1],
                           self.encoder.weight[0].shape[2], self.encoder.weight[-1].shape[2])
        out.load_state_dict({k: v.repeat(times, *[1] * (v.dim() - 1)) for k, v in self.state_dict().items()})
        return out.to(self.encoder.weight[0].device).requires_grad_(False).eval()


def train_interpolators(
    x: torch.Tensor, seeds: Sequence[int], *, epochs: int = 60, batch_size: int = 64, lr: float = 3e-3,
    code: int = 12, consistency: float = 1.0,
) -> Interpolator:
    """Train one :class:`Interpolator` per seed on the inputs ``x`` alone (no labels).

    Per mini-batch and member: a random pairing and one ``lam ~ U(0, 1)`` per pair; the loss is the
    reconstruction error of the endpoints, ``||D(E(x)) - x||^2``, plus ``consistency`` times
    ``||E(D(z)) - z||^2 / mean ||z||^2`` at the mixed code ``z = lam E(x) + (1 - lam) E(x')``: the
    decoded in-between image must encode back to its code, a fixed point of the autoencoder.
    Returns the trained interpolators, frozen and in eval mode.
    """
    x = check_tensor("x", x, min_dim=2)
    seeds = check_seeds(seeds)
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    lr, code = check_positive("lr", lr), check_positive_int("code", code)
    if isinstance(consistency, bool) or not isinstance(consistency, (int, float)) or not consistency >= 0:
        raise ValueError(f"consistency must be a number >= 0, got {consistency!r}")
    model = Interpolator(seeds, in_dim=x.shape[1], code=code).to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    streams = [torch.Generator().manual_seed(_stream(s, 5)) for s in seeds]
    n, rows = x.shape[0], torch.arange(len(seeds), device=x.device).unsqueeze(1)
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in streams])
        for start in range(0, n, batch_size):
            xb = x[orders[:, start:start + batch_size]]  # (K, B, d)
            b = xb.shape[1]
            perm = torch.stack([torch.randperm(b, generator=g) for g in streams])
            lam = torch.stack([torch.rand(b, 1, generator=g) for g in streams]).to(x)
            z = model.encoder(xb)
            rebuild = (model.decode(z) - xb).pow(2).sum(-1).mean(-1)
            z_mix = lam * z + (1 - lam) * z[rows, perm.to(x.device)]
            back = model.encoder(model.decode(z_mix))
            cycle = (back - z_mix).pow(2).sum(-1).mean(-1) / z_mix.pow(2).sum(-1).mean(-1).detach().clamp_min(1e-8)
            optimizer.zero_grad(set_to_none=True)
            (rebuild + consistency * cycle).sum().backward()  # a sum over members of per-member means
            optimizer.step()
    return model.requires_grad_(False).eval()


# ---------------------------------------------------------------------------------------------
# Training and measuring the routes


@dataclass(frozen=True)
class RouteConfig:
    """How the routes train: Adam ``lr``, ``epochs``, ``batch_size``; ``alpha`` (``None``: 1 for input
    mixup and the interpolator, 2 for manifold mixup); the extra loss's ``weight``; the decoder's
    hidden width; and for ``"linearize"`` how many examples of each batch contribute a triple."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    alpha: float | None = None
    weight: float = 1.0
    decoder_hidden: int = 128
    triples: int = 32


def route_arm(route: str, seeds: Sequence[int], *, config: RouteConfig, width: int, in_dim: int,
              trajectories: torch.Tensor | None = None, interpolator: Interpolator | None = None) -> dict:
    """The arguments of :func:`~mixlib.ensemble.fit_ensemble` that train ``route`` for ``seeds``."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if not isinstance(config, RouteConfig):
        raise TypeError(f"config must be a RouteConfig, got {type(config).__name__}")
    for name in ("decoder_hidden", "triples"):
        check_positive_int(name, getattr(config, name))
    if isinstance(config.weight, bool) or not isinstance(config.weight, (int, float)) or not config.weight >= 0:
        raise ValueError(f"weight must be a number >= 0, got {config.weight!r}")
    alpha = config.alpha if config.alpha is not None else (2.0 if route == "manifold" else 1.0)
    if route == "reconstruct":
        return {"extra_loss": Reconstruction(seeds, width, in_dim, config.decoder_hidden, config.weight)}
    if route == "linearize":
        if trajectories is None or trajectories.dim() != 3 or trajectories.shape[1] < 3:
            raise ValueError("route 'linearize' needs trajectories of shape (n, T >= 3, d)")
        return {"extra_loss": Linearisation(seeds, trajectories, config.weight, config.triples)}
    if route == "interpolate":
        if not isinstance(interpolator, Interpolator) or interpolator.size != len(seeds):
            raise ValueError(f"route 'interpolate' needs an Interpolator with {len(seeds)} members "
                             "(train_interpolators)")
        return {"method": "input", "alpha": alpha, "interpolate": interpolator}
    return {"method": route} if route == "erm" else {"method": route, "alpha": alpha}


def train_route(route: str, x: torch.Tensor, y: torch.Tensor, seeds: Sequence[int], *,
                config: RouteConfig = RouteConfig(), hidden: Sequence[int] = (128, 128), num_classes: int = 10,
                trajectories: torch.Tensor | None = None, interpolator: Interpolator | None = None,
                ) -> tuple[list[nn.Module], nn.Module | None]:
    """Train one :func:`~mixlib.manifold.mlp` per seed with ``route``, as one ensemble.

    ``x`` is ``(n, d)``, or ``(K, n, d)`` with ``y`` ``(K, n)`` for one training set per member.
    Returns the trained models (eval mode) and the route's extra loss (its decoder, for example), if any.
    """
    seeds = check_seeds(seeds)
    in_dim = x.shape[-1]
    models = seeded_mlps(seeds, in_dim, list(hidden), num_classes)
    arm = route_arm(route, seeds, config=config, width=hidden[-1], in_dim=in_dim, trajectories=trajectories,
                    interpolator=interpolator)
    fit_ensemble(models, x, y, seeds=seeds, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                 eval_every=10**9, progress=False, **arm)
    return models, arm.get("extra_loss")


def _temperature_scaled(logits: torch.Tensor, labels: torch.Tensor, n_bins: int) -> tuple[float, float]:
    """NLL and ECE on the second half of the rows after the NLL-optimal temperature of the first half."""
    half = logits.shape[0] // 2
    scaled = logits[half:].double() / temperature_for_nll(logits[:half], labels[:half])
    return nll(scaled, labels[half:]), reliability(torch.softmax(scaled, 1), labels[half:], n_bins).ece


def measure_members(models: Sequence[nn.Module], data: Split, pairs: torch.Tensor, n_bins: int = 15,
                    train_labels: torch.Tensor | None = None) -> list[dict[str, float]]:
    """Test accuracy, NLL, ECE, confidence, temperature-scaled NLL and ECE, and two flatness measures.

    One dict per model: ``test_accuracy``, ``test_nll``, ``test_ece``, ``confidence`` (mean top
    probability), ``nll_ts`` and ``ece_ts`` (on the second half of the test set after the temperature
    that minimises the NLL on the first half), ``chord`` (mean :func:`mixlib.flatness.chord_deviation` of the last
    hidden layer over the index ``pairs`` ``(P, 2)``), ``class_dim`` (participation ratio of the centred
    test-set class covariances, :func:`mixlib.flatness.class_dimension`) and, given the ``(K, n)``
    labels each model was trained on, ``train_fit``: how many of them it fits.
    """
    if not isinstance(data, Split) or data.num_classes is None:
        raise TypeError("data must be a classification Split")
    if not isinstance(pairs, torch.Tensor) or pairs.dtype != torch.long or pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError("pairs must be an int64 tensor of shape (P, 2)")
    check_positive_int("n_bins", n_bins)
    if train_labels is not None and tuple(train_labels.shape) != (len(models), len(data.x_train)):
        raise ValueError(f"train_labels must have shape ({len(models)}, {len(data.x_train)}), got "
                         f"{tuple(train_labels.shape)}")
    rows = []
    for k, model in enumerate(models):
        with torch.no_grad():
            h = model.features(data.x_test)
            logits = model.forward_from(h, len(model.blocks)).cpu()
        labels = data.y_test.cpu()  # the calibration measures run on the CPU
        probs = torch.softmax(logits.double(), dim=1)
        nll_ts, ece_ts = _temperature_scaled(logits, labels, n_bins)
        chords = chord_deviation(model.features, data.x_test[pairs[:, 0]], data.x_test[pairs[:, 1]])
        rows.append({"test_accuracy": float(score(logits, labels)), "test_nll": nll(logits, labels),
                     "test_ece": reliability(probs, labels, n_bins).ece,
                     "confidence": float(probs.max(1).values.mean()),
                     "nll_ts": nll_ts, "ece_ts": ece_ts, "chord": float(chords.mean()),
                     "class_dim": float(class_dimension(h, data.y_test))})
        if train_labels is not None:
            with torch.no_grad():
                rows[-1]["train_fit"] = float(score(model(data.x_train), train_labels[k].to(data.x_train.device)))
    return rows


def chord_pairs(n: int, n_pairs: int, seed: int = 7) -> torch.Tensor:
    """``n_pairs`` disjoint index pairs into ``n`` examples: a seeded permutation read from both ends."""
    n, n_pairs = check_positive_int("n", n), check_positive_int("n_pairs", n_pairs)
    seed = check_seed("seed", seed)
    if n_pairs > n // 2:
        raise ValueError(f"n_pairs must be at most half the test set, {n // 2}, got {n_pairs}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([order[:n_pairs], order.flip(0)[:n_pairs]], dim=1)


def compare_routes(regimes: dict[str, Split], seeds: Sequence[int], routes: dict[str, str], *,
                   config: RouteConfig = RouteConfig(), hidden: Sequence[int] = (128, 128),
                   trajectories: torch.Tensor | None = None, interpolator: Interpolator | None = None,
                   n_pairs: int = 200) -> dict[str, Comparison]:
    """Train every route on every regime with every seed, as one ensemble per route, and measure each model.

    The regimes share their inputs and differ in their training labels (clean and noisy, say); within
    a regime the runs of a seed share initial weights and mini-batches across routes (paired).
    ``routes`` maps display names to :data:`ROUTES`; ``interpolator`` has one member per seed.
    Returns ``{regime: Comparison}`` with :func:`measure_members`' keys, ``train_fit`` included.
    """
    if not isinstance(regimes, dict) or not regimes:
        raise ValueError("regimes must be a non-empty dict of name -> Split")
    splits = list(regimes.values())
    for split in splits:
        if not isinstance(split, Split) or split.num_classes is None:
            raise TypeError("every regime must be a classification Split")
        if not torch.equal(split.x_train, splits[0].x_train) or not torch.equal(split.x_test, splits[0].x_test):
            raise ValueError("the regimes must share their inputs; only the training labels may differ")
    for name, route in routes.items():
        if route not in ROUTES:
            raise ValueError(f"routes[{name!r}] must be one of {ROUTES}, got {route!r}")
    seeds = check_seeds(seeds)
    first = splits[0]
    pairs = chord_pairs(len(first.x_test), n_pairs).to(first.x_test.device)
    labels = torch.cat([split.y_train.expand(len(seeds), -1) for split in splits])  # (regimes * seeds, n)
    x = first.x_train.expand(len(labels), *first.x_train.shape)
    tiled = interpolator.repeat(len(splits)) if interpolator is not None else None
    out = {name: Comparison() for name in regimes}
    for display, route in routes.items():
        models, _ = train_route(route, x, labels, seeds * len(splits), config=config, hidden=hidden,
                                num_classes=first.num_classes, trajectories=trajectories, interpolator=tiled)
        rows = measure_members(models, first, pairs, train_labels=labels)
        for r, name in enumerate(regimes):
            for i, seed in enumerate(seeds):
                out[name].rows.append({"method": display, "seed": seed, **rows[r * len(seeds) + i]})
    return out


def tell_apart(real: torch.Tensor, candidates: torch.Tensor, *, folds: int = 5, seed: int = 0) -> float:
    """How well a small classifier tells ``candidates`` from ``real`` inputs: cross-validated accuracy.

    A proxy for "the candidates look like real data" that blurry images do not win: a one-hidden-layer
    perceptron (scikit-learn's ``MLPClassifier``, 64 hidden units) is trained to label the rows of
    ``real`` 0 and those of ``candidates`` 1, and scored on held-out rows, ``folds``-fold and stratified.
    0.5 means it cannot tell them apart (for equal counts); 1 means every candidate is caught. A
    distance to the nearest real example, by contrast, rewards a smooth average of digits, which sits
    close to many of them.

    Args:
        real: Real inputs ``(n, d)``.
        candidates: Proposed inputs ``(m, d)`` (midpoints of a mixing rule, reconstructions, ...).
        folds: The number of cross-validation folds, >= 2.
        seed: Seeds the folds and the classifier's initial weights.

    Returns:
        The mean held-out accuracy over the folds.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    real = check_tensor("real", real, min_dim=2)
    candidates = check_tensor("candidates", candidates, min_dim=2)
    if real.dim() != 2 or candidates.dim() != 2 or real.shape[1] != candidates.shape[1]:
        raise ValueError(f"real and candidates must be (n, d) and (m, d) with the same d, got "
                         f"{tuple(real.shape)} and {tuple(candidates.shape)}")
    folds = check_positive_int("folds", folds)
    seed = check_seed("seed", seed, high=2**32)
    if folds < 2 or min(len(real), len(candidates)) < folds:
        raise ValueError(f"folds must be >= 2 and at most the number of rows of each side, got folds={folds} for "
                         f"{len(real)} real and {len(candidates)} candidate rows")
    x = torch.cat([real, candidates]).detach().double().cpu().numpy()
    y = np.r_[np.zeros(len(real)), np.ones(len(candidates))]
    classifier = MLPClassifier((64,), max_iter=2000, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # sets it cannot separate leave the optimiser unconverged: an answer, not a fault
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(cross_val_score(classifier, x, y, cv=cv).mean())
