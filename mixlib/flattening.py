"""Explicit flattening: three ways to make small input changes small representation changes.

Chapter 07 compares manifold mixup with three routes that ask for a flat representation
directly instead of hoping for it:

- **reconstruction**: an auxiliary decoder must rebuild the input ``x`` from the features
  ``F(x)``, so ``F`` has to keep (and organise) what distinguishes nearby inputs;
- **linearisation**: on inputs with a known continuous parameter ``t`` (digits rotated by
  ``t`` steps, :func:`transformed_digits`), the features must move along a straight line in
  ``t``: ``F(x_{t+1})`` is predicted by ``2 F(x_t) - F(x_{t-1})`` (:func:`curvature_loss`);
- **a learned interpolator**: an autoencoder trained without labels proposes the in-between
  input ``I(x, x', lam)`` (:class:`Interpolator`), which replaces ``lam x + (1 - lam) x'`` in
  mixup.

Training many seeds of each is the expensive part, so the module trains ``K`` copies of the
same multilayer perceptron as one model with stacked weights (:class:`EnsembleMLP`, batched
matrix products): member ``k`` starts from the weights ``mlp(...)`` gets after
``torch.manual_seed(seeds[k])`` and sees its own seeded mini-batches and mixing draws, the same
for every method (:func:`train_routes`, :func:`compare_routes`). The measurements are
:func:`chord_deviation` (relative bending of the features along input chords) and
:func:`mixlib.flatness.class_dimension` (centred class covariances).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as nnf

from ._checks import check_lam, check_positive, check_positive_int, check_tensor
from .data import Split
from .experiments import Comparison
from .flatness import class_dimension
from .manifold import StagedNet, mlp
from .metrics import nll, reliability

__all__ = [
    "ROUTES",
    "transformed_digits",
    "EnsembleMLP",
    "Interpolator",
    "curvature_loss",
    "chord_deviation",
    "RouteConfig",
    "train_interpolators",
    "train_routes",
    "measure_members",
    "chord_pairs",
    "compare_routes",
]

#: The methods :func:`train_routes` knows: the three baselines and the three explicit routes.
ROUTES = ("erm", "input", "manifold", "reconstruct", "linearize", "interpolate")


# ---------------------------------------------------------------------------------------------
# Data with a known continuous parameter
# ---------------------------------------------------------------------------------------------


def transformed_digits(images: torch.Tensor, ts: Sequence[float], kind: str = "rotate") -> torch.Tensor:
    """Each 8 x 8 digit rotated (or shifted) by every value of ``ts``.

    Args:
        images: Flattened digits, shape ``(n, 64)``, pixels in [0, 1] (as :func:`mixlib.data.digits` gives).
        ts: The parameter values: angles in degrees for ``kind="rotate"``, horizontal shifts in
            pixels for ``kind="shift"``.
        kind: ``"rotate"`` (about the image centre) or ``"shift"`` (to the right for ``t > 0``).

    Returns:
        A float32 tensor of shape ``(n, len(ts), 64)``: ``out[i, j]`` is image ``i`` transformed by
        ``ts[j]`` (bilinear interpolation, zero outside the image, clipped to [0, 1]), on the
        device of ``images`` (the interpolation itself runs on the CPU).
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
    if not all(math.isfinite(t) for t in ts):
        raise ValueError(f"ts must be finite numbers, got {ts}")
    if not ts:
        raise ValueError("ts must contain at least one value")
    pictures = images.detach().cpu().double().numpy().reshape(-1, 8, 8)
    out = np.empty((pictures.shape[0], len(ts), 8, 8))
    for j, t in enumerate(ts):
        if kind == "rotate":
            out[:, j] = ndimage.rotate(pictures, t, axes=(2, 1), reshape=False, order=1, mode="constant")
        else:
            out[:, j] = ndimage.shift(pictures, (0, 0, t), order=1, mode="constant")
    result = torch.as_tensor(np.clip(out, 0.0, 1.0).reshape(-1, len(ts), 64), dtype=torch.float32)
    return result.to(images.device)


# ---------------------------------------------------------------------------------------------
# K multilayer perceptrons as one model
# ---------------------------------------------------------------------------------------------


def _stack(linears: Sequence[nn.Linear]) -> tuple[nn.Parameter, nn.Parameter]:
    weight = torch.stack([lin.weight.detach().T for lin in linears])  # (K, in, out)
    bias = torch.stack([lin.bias.detach() for lin in linears]).unsqueeze(1)  # (K, 1, out)
    return nn.Parameter(weight.clone()), nn.Parameter(bias.clone())


class EnsembleMLP(nn.Module):
    """``K`` ReLU perceptrons with one architecture, evaluated together by batched products.

    Inputs carry a leading member dimension: ``x`` of shape ``(K, B, in_dim)`` gives outputs of
    shape ``(K, B, out_dim)``, where ``out[k]`` is member ``k`` applied to ``x[k]``. Layers are
    numbered as in :class:`~mixlib.manifold.StagedNet`: layer 0 is the input and layer ``j`` the
    output of the ``j``-th hidden block; the last layer is the features ``F(x)`` the head reads.

    Args:
        models: ``K >= 1`` :func:`~mixlib.manifold.mlp` networks with ReLU blocks and one
            architecture; their current weights are copied.
    """

    def __init__(self, models: Sequence[StagedNet]) -> None:
        super().__init__()
        if not models or not all(isinstance(m, StagedNet) for m in models):
            raise TypeError("models must be a non-empty sequence of mixlib StagedNet (mlp) networks")
        first = models[0]
        shapes = [tuple(p.shape) for p in first.parameters()]
        for m in models[1:]:
            if [tuple(p.shape) for p in m.parameters()] != shapes:
                raise ValueError("models must all have the same architecture")
        for block in first.blocks:
            if not (isinstance(block, nn.Sequential) and len(block) == 2 and isinstance(block[0], nn.Linear)
                    and isinstance(block[1], nn.ReLU)):
                raise ValueError("models must be mlp(..., activation='relu') networks: Linear + ReLU blocks")
        if not isinstance(first.head, nn.Linear):
            raise ValueError("models must have a Linear head")
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for j in range(len(first.blocks)):
            w, b = _stack([m.blocks[j][0] for m in models])
            self.weights.append(w)
            self.biases.append(b)
        w, b = _stack([m.head for m in models])
        self.weights.append(w)
        self.biases.append(b)
        self.size = len(models)
        self.depth = len(first.blocks)
        self.eligible_layers = first.eligible_layers

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], in_dim: int, hidden: Sequence[int], out_dim: int) -> EnsembleMLP:
        """Member ``k`` is ``mlp(in_dim, hidden, out_dim)`` built right after ``torch.manual_seed(seeds[k])``.

        The global RNG state is restored afterwards.
        """
        seeds = _check_seeds(seeds)
        state = torch.random.get_rng_state()
        try:
            models = []
            for s in seeds:
                torch.manual_seed(s)
                models.append(mlp(in_dim, list(hidden), out_dim))
        finally:
            torch.random.set_rng_state(state)
        return cls(models)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor("x", x, min_dim=3)
        if x.dim() != 3 or x.shape[0] != self.size:
            raise ValueError(f"x must have shape ({self.size}, B, in_dim), one batch per member; got {tuple(x.shape)}")
        return x

    def layer(self, h: torch.Tensor, j: int) -> torch.Tensor:
        """Block ``j`` applied to the hidden state ``h`` at layer ``j`` (the head for ``j = depth``)."""
        out = torch.baddbmm(self.biases[j], h, self.weights[j])
        return out if j == self.depth else torch.relu(out)

    def features(self, x: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """The hidden states at ``layer`` (default: the last hidden layer, ``F(x)``), shape ``(K, B, width)``."""
        x = self._check_input(x)
        layer = self.depth if layer is None else layer
        if not 0 <= layer <= self.depth:
            raise ValueError(f"layer must be in 0..{self.depth}, got {layer}")
        h = x
        for j in range(layer):
            h = self.layer(h, j)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits, shape ``(K, B, out_dim)``."""
        return self.forward_from(self.features(x), self.depth)

    def forward_from(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Continue from hidden states ``h`` at ``layer`` to the logits."""
        for j in range(layer, self.depth + 1):
            h = self.layer(h, j)
        return h

    def forward_mixed(self, x: torch.Tensor, layers: torch.Tensor, lam: torch.Tensor,
                      perm: torch.Tensor) -> torch.Tensor:
        """Logits when member ``k`` mixes its hidden states at ``layers[k]`` with weight ``lam[k]``.

        Args:
            x: Inputs, shape ``(K, B, in_dim)``.
            layers: Int64 tensor ``(K,)``: the layer each member mixes at.
            lam: Float tensor ``(K,)``: each member's mixing weight.
            perm: Int64 tensor ``(K, B)``: each member's pairing.

        Returns:
            Logits ``(K, B, out_dim)``; member ``k`` equals
            ``StagedNet.forward_mixed(x[k], layers[k], lam[k], perm[k])`` of its own network.
        """
        x = self._check_input(x)
        size, batch = x.shape[0], x.shape[1]
        if not isinstance(layers, torch.Tensor) or layers.shape != (size,) or layers.is_floating_point():
            raise ValueError(f"layers must be an integer tensor of shape ({size},), one layer per member")
        if bool(((layers < 0) | (layers > self.depth)).any()):
            raise ValueError(f"layers must lie in 0..{self.depth}, got {layers.tolist()}")
        if not isinstance(lam, torch.Tensor) or lam.shape != (size,):
            raise ValueError(f"lam must be a tensor of shape ({size},), one mixing weight per member")
        check_lam(lam)
        if not isinstance(perm, torch.Tensor) or perm.dtype != torch.long or perm.shape != (size, batch):
            raise ValueError(f"perm must be an int64 tensor of shape ({size}, {batch}), one pairing per member")
        lam3 = lam.to(x.dtype).reshape(-1, 1, 1)
        h = x
        for j in range(self.depth + 1):
            here = (layers == j).reshape(-1, 1, 1)
            if bool(here.any()):
                partner = torch.gather(h, 1, perm.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
                h = torch.where(here, lam3 * h + (1 - lam3) * partner, h)
            h = self.layer(h, j)
        return h

    def member(self, k: int) -> StagedNet:
        """Member ``k`` as an ordinary :func:`~mixlib.manifold.mlp` (a copy on the ensemble's device, in eval mode)."""
        if not 0 <= k < self.size:
            raise ValueError(f"k must be in 0..{self.size - 1}, got {k}")
        widths = [w.shape[2] for w in self.weights[:-1]]
        net = mlp(self.weights[0].shape[1], widths, self.weights[-1].shape[2], eligible_layers=self.eligible_layers)
        net = net.to(self.weights[0].device)
        linears = [block[0] for block in net.blocks] + [net.head]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases, strict=True):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
        return net.eval()


class _Stack(nn.Module):
    """``K`` small perceptrons with stacked weights; ``activations[j]`` after layer ``j``."""

    def __init__(self, size: int, widths: Sequence[int], activations: Sequence[str], seeds: Sequence[int]) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.activations = list(activations)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1 / math.sqrt(fan_in)  # the scale of nn.Linear's default initialisation
            w = torch.stack([(torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            b = torch.stack([(torch.rand(1, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        if len(self.activations) != len(self.weights) or size != len(gens):
            raise ValueError("one activation per layer and one seed per member are needed")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for w, b, act in zip(self.weights, self.biases, self.activations, strict=True):
            h = torch.baddbmm(b, h, w)
            if act == "relu":
                h = torch.relu(h)
            elif act == "sigmoid":
                h = torch.sigmoid(h)
        return h


class Interpolator(nn.Module):
    """``K`` autoencoders that propose an input between two inputs.

    With encoder ``E`` and decoder ``D``, the proposal for ``x``, ``x'`` and weight ``lam`` is

    ``I(x, x', lam) = D(lam E(x) + (1 - lam) E(x')) + lam (x - D(E(x))) + (1 - lam) (x' - D(E(x')))``:

    the decoded mix of the codes, plus the mix of the two reconstruction residuals, so that
    ``I(x, x', 1) = x`` and ``I(x, x', 0) = x'`` exactly. It differs from linear mixing by
    ``D(lam E(x) + (1 - lam) E(x')) - (lam D(E(x)) + (1 - lam) D(E(x')))``: how far the decoder's
    path bends away from the straight line.

    Args:
        seeds: One seed per member, for its initial weights.
        in_dim: Input width (64 for digits).
        hidden: Width of the hidden layer of the encoder and of the decoder.
        code: Width of the code.
    """

    def __init__(self, seeds: Sequence[int], in_dim: int = 64, hidden: int = 64, code: int = 12) -> None:
        super().__init__()
        seeds = _check_seeds(seeds)
        for name, value in (("in_dim", in_dim), ("hidden", hidden), ("code", code)):
            check_positive_int(name, value)
        self.size = len(seeds)
        self.encoder = _Stack(self.size, [in_dim, hidden, code], ["relu", "none"], [s * 7919 + 1 for s in seeds])
        self.decoder = _Stack(self.size, [code, hidden, in_dim], ["relu", "sigmoid"], [s * 7919 + 2 for s in seeds])

    def forward(self, x: torch.Tensor, x2: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """``I(x, x2, lam)`` for inputs ``(K, B, d)`` and weights ``lam`` of shape ``(K,)`` or ``(K, B)``."""
        x = check_tensor("x", x, min_dim=3)
        x2 = check_tensor("x2", x2, min_dim=3)
        if x.shape != x2.shape or x.shape[0] != self.size:
            raise ValueError(f"x and x2 must both have shape ({self.size}, B, d); got {tuple(x.shape)}, "
                             f"{tuple(x2.shape)}")
        if not isinstance(lam, torch.Tensor) or lam.shape not in ((self.size,), tuple(x.shape[:2])):
            raise ValueError(f"lam must be a tensor of shape ({self.size},) or {tuple(x.shape[:2])}")
        check_lam(lam)
        lam = lam.to(x.dtype).reshape(self.size, -1, 1)
        z, z2 = self.encoder(x), self.encoder(x2)
        residual, residual2 = x - self.decoder(z), x2 - self.decoder(z2)
        return self.decoder(lam * z + (1 - lam) * z2) + lam * residual + (1 - lam) * residual2

    def repeat(self, times: int) -> Interpolator:
        """A new interpolator whose members are these, repeated ``times`` times (``[0..K-1] * times``)."""
        times = check_positive_int("times", times)
        out = Interpolator([0] * (self.size * times), in_dim=self.encoder.weights[0].shape[1],
                           hidden=self.encoder.weights[0].shape[2], code=self.encoder.weights[-1].shape[2])
        out = out.to(self.encoder.weights[0].device)
        with torch.no_grad():
            for mine, theirs in ((out.encoder, self.encoder), (out.decoder, self.decoder)):
                for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
                    p.copy_(q.repeat(times, 1, 1))
        out.eval()
        out.requires_grad_(False)
        return out


# ---------------------------------------------------------------------------------------------
# Losses and measurements
# ---------------------------------------------------------------------------------------------


def curvature_loss(h_before: torch.Tensor, h: torch.Tensor, h_after: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """How badly linear extrapolation predicts the next point of a trajectory, relative to its step.

    For three consecutive points ``h_{t-1}, h_t, h_{t+1}`` (rows of the three arguments) it is

    ``||h_{t+1} - (2 h_t - h_{t-1})||^2 / (||h_{t+1} - h_t||^2 + ||h_t - h_{t-1}||^2 + eps)``,

    per row: zero when the three points are equally spaced on a straight line, and unchanged
    when the features are scaled, so it cannot be lowered by shrinking ``F``.

    Args:
        h_before: Features at ``t - 1``, shape ``(..., d)``.
        h: Features at ``t``, the same shape.
        h_after: Features at ``t + 1``, the same shape.
        eps: Added to the denominator (identical points give 0, not NaN).

    Returns:
        The loss per row, shape ``h.shape[:-1]``.
    """
    for name, t in (("h_before", h_before), ("h", h), ("h_after", h_after)):
        check_tensor(name, t, min_dim=1)
    if not h_before.shape == h.shape == h_after.shape:
        raise ValueError(f"h_before, h and h_after must have one shape, got {tuple(h_before.shape)}, "
                         f"{tuple(h.shape)}, {tuple(h_after.shape)}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    miss = (h_after - 2 * h + h_before).pow(2).sum(-1)
    step = (h_after - h).pow(2).sum(-1) + (h - h_before).pow(2).sum(-1)
    return miss / (step + eps)


def chord_deviation(
    features: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x2: torch.Tensor, n_points: int = 11
) -> torch.Tensor:
    """How far the features bend away from a straight line along input chords, relative to the chord.

    For each pair, with ``x_t = t x + (1 - t) x2`` and ``f = features``,

    ``mean_t ||f(x_t) - (t f(x) + (1 - t) f(x2))|| / ||f(x) - f(x2)||``

    over ``n_points`` equally spaced ``t`` in [0, 1]. Zero for features that are affine along the
    chord; a ratio, so scaling the features does not change it.

    Args:
        features: Maps a batch of inputs ``(B, d)`` to features ``(B, m)``.
        x: Inputs, shape ``(B, d)``.
        x2: Partners, shape ``(B, d)``.
        n_points: Points per chord, >= 2.

    Returns:
        One value per pair, shape ``(B,)``.
    """
    if not callable(features):
        raise TypeError(f"features must be a function or module mapping inputs to features, got "
                        f"{type(features).__name__}")
    x, x2 = check_tensor("x", x, min_dim=2), check_tensor("x2", x2, min_dim=2)
    if x.shape != x2.shape:
        raise ValueError(f"x2 must have the shape of x {tuple(x.shape)}, got {tuple(x2.shape)}")
    n_points = check_positive_int("n_points", n_points)
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    ts = torch.linspace(0, 1, n_points, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    points = ts * x + (1 - ts) * x2
    with torch.no_grad():
        f = features(points.reshape(-1, x.shape[1])).reshape(n_points, x.shape[0], -1)
    straight = ts * f[-1] + (1 - ts) * f[0]
    bend = (f - straight).norm(dim=-1).mean(0)
    return bend / (f[-1] - f[0]).norm(dim=-1).clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------
# Training K seeds of one route at once
# ---------------------------------------------------------------------------------------------


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seeds must be ints >= 0, got {s!r}")
    return seeds


@dataclass(frozen=True)
class RouteConfig:
    """How :func:`train_routes` trains.

    Attributes:
        epochs: Passes over the training set.
        batch_size: Examples per mini-batch.
        lr: Adam's learning rate.
        alpha: Beta(alpha, alpha) for the mixing weight; ``None`` uses the paper's values
            (1 for input mixup and the interpolator, 2 for manifold mixup).
        weight: Weight of the auxiliary loss (reconstruction or curvature).
        decoder_hidden: Hidden width of the reconstruction decoder.
        triples: For ``"linearize"``: how many examples of each mini-batch (the first ones) also
            contribute a triple of consecutive points to the curvature loss.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    alpha: float | None = None
    weight: float = 1.0
    decoder_hidden: int = 128
    triples: int = 32


def _rngs(seeds: Sequence[int], stream: int) -> list[np.random.Generator]:
    return [np.random.default_rng([s, stream]) for s in seeds]


def _gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[k, index[k]]`` for every member ``k``; ``t`` is ``(K, B, d)`` and ``index`` ``(K, B)``."""
    return torch.gather(t, 1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def train_interpolators(
    x: torch.Tensor, seeds: Sequence[int], *, epochs: int = 60, batch_size: int = 64, lr: float = 3e-3,
    code: int = 12, consistency: float = 1.0,
) -> Interpolator:
    """Train one :class:`Interpolator` per seed on the inputs ``x`` alone (no labels).

    Per mini-batch and member: a random pairing and one ``lam ~ U(0, 1)`` per pair; the loss is
    the reconstruction error of the endpoints, ``||D(E(x)) - x||^2``, plus ``consistency`` times
    ``||E(D(z)) - z||^2 / mean ||z||^2`` at the mixed code ``z = lam E(x) + (1 - lam) E(x')``: the
    decoded in-between image must encode back to the code it came from, i.e. be a fixed point
    of the autoencoder, which is what an input near the learned manifold is.

    Args:
        x: Unlabelled inputs ``(n, d)``, shared by all members.
        seeds: One per member: its initial weights, mini-batches and draws.
        epochs, batch_size, lr: Adam training.
        code: Width of the code.
        consistency: Weight of the re-encoding term.

    Returns:
        The trained interpolators, in eval mode, with gradients switched off.
    """
    x = check_tensor("x", x, min_dim=2)
    seeds = _check_seeds(seeds)
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_positive_int("code", code)
    if isinstance(consistency, bool) or not isinstance(consistency, (int, float)) or not consistency >= 0:
        raise ValueError(f"consistency must be a number >= 0, got {consistency!r}")
    device = x.device
    model = Interpolator(seeds, in_dim=x.shape[1], code=code).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order_rngs, draw_rngs = _rngs(seeds, 11), _rngs(seeds, 12)
    n = x.shape[0]
    for _ in range(epochs):
        order = torch.as_tensor(np.stack([r.permutation(n) for r in order_rngs]), device=device)
        for start in range(0, n, batch_size):
            idx = order[:, start:start + batch_size]
            b = idx.shape[1]
            xb = x[idx]
            perm = torch.as_tensor(np.stack([r.permutation(b) for r in draw_rngs]), device=device)
            lam = torch.as_tensor(np.stack([r.uniform(size=b) for r in draw_rngs]), dtype=x.dtype,
                                  device=device).unsqueeze(-1)
            z = model.encoder(xb)
            recon = (model.decoder(z) - xb).pow(2).sum(-1).mean()
            zmix = lam * z + (1 - lam) * _gather_rows(z, perm)
            back = model.encoder(model.decoder(zmix))
            cycle = (back - zmix).pow(2).sum(-1).mean() / zmix.pow(2).sum(-1).mean().detach().clamp_min(1e-8)
            loss = (recon + consistency * cycle) * len(seeds)  # a sum over members of per-member means
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    model.requires_grad_(False)
    return model


def train_routes(
    route: str,
    x: torch.Tensor,
    labels: torch.Tensor,
    seeds: Sequence[int],
    *,
    config: RouteConfig = RouteConfig(),
    hidden: Sequence[int] = (128, 128),
    num_classes: int = 10,
    trajectories: torch.Tensor | None = None,
    interpolator: Interpolator | None = None,
) -> tuple[EnsembleMLP, list[float], nn.Module | None]:
    """Train ``len(seeds)`` classifiers with one route, as one vectorised ensemble.

    Member ``k`` starts from ``mlp(d, hidden, num_classes)`` built after
    ``torch.manual_seed(seeds[k])``, whatever the route, and sees the same mini-batches (a
    stream seeded by ``seeds[k]``) under every route; its mixing draws come from a second stream,
    so they do not shift the batches. Training is Adam on the sum over members of each member's
    mean loss, which is ``K`` independent Adam runs.

    Args:
        route: One of :data:`ROUTES`: ``"erm"``; ``"input"`` (input mixup); ``"manifold"`` (mixing at
            a layer drawn uniformly from the input and the hidden layers); ``"reconstruct"`` (ERM
            plus ``config.weight`` times the squared error of a decoder that rebuilds ``x`` from the
            last hidden layer); ``"linearize"`` (ERM plus ``config.weight`` times
            :func:`curvature_loss` on consecutive points of ``trajectories``); ``"interpolate"``
            (input mixup with ``interpolator`` in place of linear mixing).
        x: Training inputs ``(n, d)``.
        labels: Integer labels ``(n,)`` shared by all members, or ``(K, n)``, one row per member
            (for example clean labels for some members and noisy ones for others).
        seeds: One per member.
        config: Epochs, batch size, learning rate, alpha and the auxiliary weight.
        hidden: Hidden widths of the classifier.
        num_classes: Number of classes.
        trajectories: For ``"linearize"``: ``(n, T, d)`` inputs along a parameter ``t`` (for
            example :func:`transformed_digits`), ``T >= 3``; each step uses a random triple of
            consecutive points per example, unlabelled.
        interpolator: For ``"interpolate"``: an :class:`Interpolator` with one member per seed.

    Returns:
        ``(ensemble, losses, decoder)``: the trained :class:`EnsembleMLP` (eval mode), the mean
        training loss of each epoch (averaged over members), and the reconstruction decoder for
        ``"reconstruct"`` (else ``None``), which maps ``(K, B, hidden[-1])`` features to inputs.
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    x = check_tensor("x", x, min_dim=2)
    seeds = _check_seeds(seeds)
    size = len(seeds)
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
        raise TypeError("labels must be an integer tensor of class indices")
    if labels.dim() == 1:
        labels = labels.unsqueeze(0).expand(size, -1)
    if labels.shape != (size, x.shape[0]):
        raise ValueError(f"labels must have shape ({x.shape[0]},) or ({size}, {x.shape[0]}), got {tuple(labels.shape)}")
    if not isinstance(config, RouteConfig):
        raise TypeError(f"config must be a RouteConfig, got {type(config).__name__}")
    check_positive_int("epochs", config.epochs)
    check_positive_int("batch_size", config.batch_size)
    check_positive("lr", config.lr)
    check_positive_int("decoder_hidden", config.decoder_hidden)
    check_positive_int("triples", config.triples)
    if config.alpha is not None:
        check_positive("alpha", config.alpha)
    if isinstance(config.weight, bool) or not isinstance(config.weight, (int, float)) or not config.weight >= 0:
        raise ValueError(f"weight must be a number >= 0, got {config.weight!r}")
    if route == "linearize":
        if trajectories is None:
            raise ValueError("route 'linearize' needs trajectories of shape (n, T, d)")
        check_tensor("trajectories", trajectories, min_dim=3)
        if trajectories.shape[0] != x.shape[0] or trajectories.shape[2] != x.shape[1] or trajectories.shape[1] < 3:
            raise ValueError(f"trajectories must have shape ({x.shape[0]}, T >= 3, {x.shape[1]}), "
                             f"got {tuple(trajectories.shape)}")
    if route == "interpolate" and (not isinstance(interpolator, Interpolator) or interpolator.size != size):
        raise ValueError(f"route 'interpolate' needs an Interpolator with {size} members (train_interpolators)")
    alpha = config.alpha if config.alpha is not None else (2.0 if route == "manifold" else 1.0)

    device = x.device
    labels = labels.to(device)
    if trajectories is not None:
        trajectories = trajectories.to(device)
    net = EnsembleMLP.from_seeds(seeds, x.shape[1], hidden, num_classes).to(device)
    params = list(net.parameters())
    decoder = None
    if route == "reconstruct":
        decoder = _Stack(size, [hidden[-1], config.decoder_hidden, x.shape[1]], ["relu", "sigmoid"],
                         [s * 7919 + 3 for s in seeds]).to(device)
        params += list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    order_rngs, draw_rngs = _rngs(seeds, 1), _rngs(seeds, 2)
    n = x.shape[0]
    eligible = list(range(net.depth + 1)) if route == "manifold" else [0]
    losses = []
    net.train()
    for _ in range(config.epochs):
        order = torch.as_tensor(np.stack([r.permutation(n) for r in order_rngs]), device=device)
        total, steps = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[:, start:start + config.batch_size]
            b = idx.shape[1]
            xb, yb = x[idx], torch.gather(labels, 1, idx)
            if route == "erm" or route in ("reconstruct", "linearize"):
                h = net.features(xb)
                per = nnf.cross_entropy(net.forward_from(h, net.depth).transpose(1, 2), yb, reduction="none").mean(1)
                if route == "reconstruct":
                    per = per + config.weight * (decoder(h) - xb).pow(2).sum(-1).mean(1)
                elif route == "linearize":
                    m = min(b, config.triples)
                    centre = torch.as_tensor(np.stack([r.integers(1, trajectories.shape[1] - 1, size=m)
                                                       for r in draw_rngs]), device=device)
                    rows = idx[:, :m].unsqueeze(-1)
                    offsets = torch.tensor([-1, 0, 1], device=device)
                    triple = trajectories[rows, centre.unsqueeze(-1) + offsets]  # (K, m, 3, d)
                    f = net.features(triple.transpose(1, 2).reshape(size, 3 * m, -1)).reshape(size, 3, m, -1)
                    per = per + config.weight * curvature_loss(f[:, 0], f[:, 1], f[:, 2]).mean(1)
            else:
                lam = torch.as_tensor([r.beta(alpha, alpha) for r in draw_rngs], dtype=x.dtype, device=device)
                perm = torch.as_tensor(np.stack([r.permutation(b) for r in draw_rngs]), device=device)
                layers = torch.as_tensor([eligible[int(r.integers(len(eligible)))] for r in draw_rngs], device=device)
                if route == "interpolate":
                    with torch.no_grad():
                        mixed = interpolator(xb, _gather_rows(xb, perm), lam)
                    logits = net(mixed)
                else:
                    logits = net.forward_mixed(xb, layers, lam, perm)
                logp = torch.log_softmax(logits, -1)
                ce = -logp.gather(-1, yb.unsqueeze(-1)).squeeze(-1).mean(1)
                ce2 = -logp.gather(-1, torch.gather(yb, 1, perm).unsqueeze(-1)).squeeze(-1).mean(1)
                per = lam * ce + (1 - lam) * ce2
            loss = per.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) / size
            steps += 1
        losses.append(total / steps)
    net.eval()
    if decoder is not None:
        decoder.eval()
    return net, losses, decoder


def _temperature_scaled(logits: torch.Tensor, labels: torch.Tensor, n_bins: int) -> tuple[float, float]:
    """NLL and ECE on the second half of the rows after a temperature fitted (by NLL) on the first half."""
    half = logits.shape[0] // 2
    temperatures = torch.logspace(-1.5, 1.5, 301, dtype=torch.float64, device=logits.device)
    fit = logits[:half].double().unsqueeze(0) / temperatures.reshape(-1, 1, 1)
    losses = nnf.cross_entropy(fit.transpose(1, 2), labels[:half].expand(len(temperatures), -1),
                               reduction="none").mean(1)
    scaled = logits[half:].double() / temperatures[int(losses.argmin())]
    return nll(scaled, labels[half:]), reliability(torch.softmax(scaled, 1), labels[half:], n_bins).ece


def measure_members(net: EnsembleMLP, data: Split, pairs: torch.Tensor, n_bins: int = 15,
                    train_labels: torch.Tensor | None = None) -> list[dict[str, float]]:
    """Test accuracy, NLL, ECE and two flatness measures of every member of ``net``.

    Args:
        net: A trained :class:`EnsembleMLP`.
        data: The split whose test part is measured.
        pairs: Int64 tensor ``(P, 2)`` of index pairs into the test set, the chords for
            :func:`chord_deviation`.
        n_bins: Confidence bins of the ECE.
        train_labels: Optional ``(K, n_train)`` labels each member was trained on; then each dict
            also has ``train_fit``, the member's accuracy on its own training labels (with noisy
            labels: how much of the noise it has memorised).

    Returns:
        One dict per member with ``test_accuracy``, ``test_nll``, ``test_ece``, ``confidence`` (the
        mean top probability on the test set), ``nll_ts`` and ``ece_ts`` (NLL and ECE on the second
        half of the test set after dividing the logits by the temperature that minimises the NLL
        on the first half: what is left once confidence is matched), ``chord`` (the mean
        :func:`chord_deviation` of the last hidden layer over ``pairs``) and ``class_dim`` (the
        participation ratio of the centred test-set class covariances at that layer,
        :func:`mixlib.flatness.class_dimension`).
    """
    if not isinstance(net, EnsembleMLP):
        raise TypeError(f"net must be an EnsembleMLP, got {type(net).__name__}")
    if not isinstance(data, Split) or data.num_classes is None:
        raise TypeError("data must be a classification Split")
    if not isinstance(pairs, torch.Tensor) or pairs.dtype != torch.long or pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError("pairs must be an int64 tensor of shape (P, 2)")
    check_positive_int("n_bins", n_bins)
    if train_labels is not None and tuple(train_labels.shape) != (net.size, len(data.x_train)):
        raise ValueError(f"train_labels must have shape ({net.size}, {len(data.x_train)}), got "
                         f"{tuple(train_labels.shape)}")
    rows = []
    for k in range(net.size):
        member = net.member(k)
        with torch.no_grad():
            h = member.features(data.x_test)
            logits = member.forward_from(h, net.depth)
        logits, labels = logits.cpu(), data.y_test.cpu()  # the calibration measures run on the CPU
        probs = torch.softmax(logits.double(), dim=1)
        nll_ts, ece_ts = _temperature_scaled(logits, labels, n_bins)
        chords = chord_deviation(member.features, data.x_test[pairs[:, 0]], data.x_test[pairs[:, 1]])
        rows.append({
            "test_accuracy": float((logits.argmax(1) == labels).double().mean()),
            "test_nll": nll(logits, labels),
            "test_ece": reliability(probs, labels, n_bins).ece,
            "confidence": float(probs.max(1).values.mean()),
            "nll_ts": nll_ts,
            "ece_ts": ece_ts,
            "chord": float(chords.mean()),
            "class_dim": float(class_dimension(h, data.y_test)),
        })
        if train_labels is not None:
            with torch.no_grad():
                fit = member(data.x_train).argmax(1) == train_labels[k].to(data.x_train.device)
            rows[-1]["train_fit"] = float(fit.double().mean())
    return rows


def chord_pairs(n: int, n_pairs: int, seed: int = 7) -> torch.Tensor:
    """The ``n_pairs`` index pairs into a set of ``n`` examples that :func:`compare_routes` measures chords on.

    A random permutation of ``range(n)`` (from ``seed``) is read from both ends: pair ``i`` joins
    its ``i``-th first and ``i``-th last entries, so no index appears twice.

    Args:
        n: Number of examples (the test set's size).
        n_pairs: Number of pairs, at most ``n // 2``.
        seed: Seed of the permutation.

    Returns:
        An int64 tensor of shape ``(n_pairs, 2)`` on the CPU.
    """
    n = check_positive_int("n", n)
    n_pairs = check_positive_int("n_pairs", n_pairs)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if n_pairs > n // 2:
        raise ValueError(f"n_pairs must be at most half the test set, {n // 2}, got {n_pairs}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([order[:n_pairs], order.flip(0)[:n_pairs]], dim=1)


def compare_routes(
    regimes: dict[str, Split],
    seeds: Sequence[int],
    routes: dict[str, str],
    *,
    config: RouteConfig = RouteConfig(),
    hidden: Sequence[int] = (128, 128),
    trajectories: torch.Tensor | None = None,
    interpolator: Interpolator | None = None,
    n_pairs: int = 200,
) -> dict[str, Comparison]:
    """Train every route on every regime with every seed, and measure each trained member.

    The regimes share their inputs and differ in their training labels (for example clean
    and noisy labels), so one ensemble of ``len(regimes) * len(seeds)`` members trains a route
    on all of them at once. Within a regime, the runs of one seed share initial weights and
    mini-batches across routes: the comparisons are paired.

    Args:
        regimes: ``{name: Split}`` with identical ``x_train`` and test sets.
        seeds: The seeds, one run per seed, route and regime.
        routes: ``{display name: route}`` with each route in :data:`ROUTES`.
        config: Training settings shared by all routes.
        hidden: Hidden widths of the classifier.
        trajectories: For ``"linearize"``; see :func:`train_routes`.
        interpolator: For ``"interpolate"``: one member per seed (it is repeated per regime).
        n_pairs: Test pairs for the chord measure (:func:`chord_pairs`, with its fixed seed).

    Returns:
        ``{regime: Comparison}``: one row per route and seed, with ``"method"`` (the display
        name), ``"seed"`` and :func:`measure_members`' keys, ``train_fit`` included (accuracy on
        the regime's own training labels). No models are kept.
    """
    if not isinstance(regimes, dict) or not regimes:
        raise ValueError("regimes must be a non-empty dict of name -> Split")
    splits = list(regimes.values())
    for split in splits:
        if not isinstance(split, Split) or split.num_classes is None:
            raise TypeError("every regime must be a classification Split")
        if not torch.equal(split.x_train, splits[0].x_train) or not torch.equal(split.x_test, splits[0].x_test):
            raise ValueError("the regimes must share their inputs; only the training labels may differ")
    seeds = _check_seeds(seeds)
    for name, route in routes.items():
        if route not in ROUTES:
            raise ValueError(f"routes[{name!r}] must be one of {ROUTES}, got {route!r}")
    first = splits[0]
    pairs = chord_pairs(len(first.x_test), n_pairs).to(first.x_test.device)
    labels = torch.cat([split.y_train.expand(len(seeds), -1) for split in splits])
    member_seeds = seeds * len(splits)
    tiled = interpolator.repeat(len(splits)) if interpolator is not None else None
    out = {name: Comparison() for name in regimes}
    for display, route in routes.items():
        net, _, _ = train_routes(route, first.x_train, labels, member_seeds, config=config, hidden=hidden,
                                 num_classes=first.num_classes, trajectories=trajectories, interpolator=tiled)
        rows = measure_members(net, first, pairs, train_labels=labels)
        for r, name in enumerate(regimes):
            for i, seed in enumerate(seeds):
                out[name].rows.append({"method": display, "seed": seed, **rows[r * len(seeds) + i]})
    return out
