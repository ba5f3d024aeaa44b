"""Checkers for chapter 3, manifold mixup."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..flatness import class_singular_values
from ..manifold import StagedNet, mlp
from . import Feedback, as_float, call, check_callable, finish, hint, passed


def _net() -> StagedNet:
    """A small fixed network with layers 0..3, all eligible; its weights do not depend on global state."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(303)
        model = mlp(3, [6, 5, 4], 3)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(8, 3, generator=g)
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])  # no fixed point: every example has a partner
    return x, perm


def _mix_from(model: StagedNet, x: torch.Tensor, layer: int, lam: float, perm: torch.Tensor,
              a: float | None = None, both: bool = False) -> torch.Tensor:
    """``forward_from`` of a mix at ``layer``; ``a`` overrides the weight of the example itself."""
    h = model.features(x, layer)
    w = lam if a is None else a
    partner = h[perm]
    first = h[perm] if both else h
    return model.forward_from(w * first + (1 - w) * partner, layer)


def _mixed_outputs(answer: Callable, model: StagedNet, x: torch.Tensor, layer: int, lam: float,
                   perm: torch.Tensor) -> tuple[torch.Tensor | None, Feedback | None]:
    out, problem = call(answer, model, x, layer, lam, perm)
    if problem is not None:
        return None, problem
    if not isinstance(out, torch.Tensor):
        return None, hint(f"return the network's output (a tensor of logits), not {type(out).__name__}.")
    if out.shape != (x.shape[0], 3):
        return None, hint(f"the output should have shape {(x.shape[0], 3)}, one row of logits per example; "
                          f"yours has shape {tuple(out.shape)}. Return the network's output, after continuing "
                          "the forward pass from the mixed hidden state with model.forward_from.")
    return out, None


def check_mix_hidden(mix_hidden: Callable, strict: bool = False) -> Feedback:
    """Check ``mix_hidden(model, x, layer, lam, perm) -> logits``.

    The expected answer is the output of the :class:`~mixlib.manifold.StagedNet` ``model``
    when the hidden states at ``layer`` (``model.features(x, layer)``) are replaced by
    ``lam * h + (1 - lam) * h[perm]`` and the forward pass continues from there
    (``model.forward_from``), with gradients flowing into every layer.
    """
    problem = check_callable(mix_hidden, "mix_hidden")
    if problem is not None:
        return finish(problem, strict)
    model, (x, perm) = _net(), _batch()
    lam = 0.3
    for layer in (2, 0, 3, 1):
        out, problem = _mixed_outputs(mix_hidden, model, x, layer, lam, perm)
        if problem is not None:
            return finish(problem, strict)
        with torch.no_grad():
            expected = _mix_from(model, x, layer, lam, perm)
            plain = model(x)
            wrong = [
                ("your output is the ordinary forward pass: nothing was mixed. Mixing only the targets is "
                 "not manifold mixup; the hidden states h = model.features(x, layer) must be mixed too.", plain),
                ("you mixed the outputs (logits) instead of the hidden states at `layer`: mix "
                 "h = model.features(x, layer), then continue with model.forward_from(mixed, layer).",
                 lam * plain + (1 - lam) * plain[perm]),
                ("you applied perm to both sides, lam * h[perm] + (1 - lam) * h[perm], which is just h[perm]: "
                 "each example must be mixed with its partner, lam * h + (1 - lam) * h[perm].",
                 _mix_from(model, x, layer, lam, perm, both=True)),
                ("the weights are swapped: the example itself gets lam and its partner h[perm] gets 1 - lam.",
                 _mix_from(model, x, layer, lam, perm, a=1 - lam)),
            ]
            for off in (-1, 1):
                k = layer + off
                if 0 <= k <= len(model.blocks):
                    wrong.append((f"you mixed at layer {k} instead of layer {layer}: an off-by-one. Layer k is "
                                  "the INPUT to block k (layer 0 is x itself), so use model.features(x, layer) "
                                  "and model.forward_from(mixed, layer) with the same `layer`.",
                                  _mix_from(model, x, k, lam, perm)))
        if not torch.allclose(out.detach(), expected, atol=1e-5, rtol=1e-4):
            for message, value in wrong:
                if torch.allclose(out.detach(), value, atol=1e-5, rtol=1e-4):
                    return finish(hint(f"at layer {layer}: {message}"), strict)
            gap = float((out.detach() - expected).abs().max())
            return finish(hint(f"at layer {layer} with lam = {lam} your output differs from the mixed forward "
                               f"pass by up to {gap:.3g}."), strict)
        if not out.requires_grad:
            return finish(hint("your output carries no gradient: do not wrap the forward pass in "
                               "torch.no_grad() or detach it. Manifold mixup trains the layers before the "
                               "mixing point too."), strict)
    # lam = 1 must give back the ordinary forward pass
    out, problem = _mixed_outputs(mix_hidden, model, x, 2, 1.0, perm)
    if problem is not None:
        return finish(problem, strict)
    if not torch.allclose(out.detach(), model(x).detach(), atol=1e-5, rtol=1e-4):
        return finish(hint("with lam = 1 the output should be the ordinary forward pass model(x)."), strict)
    return finish(passed("your function mixes the hidden states at the requested layer and continues the "
                         "forward pass from there, at layers 0 (input mixup) to 3."), strict)


def _flattening_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)
    cases = []
    for sizes, dim in [((12, 7, 20), 5), ((9, 15), 8)]:
        hs, ys = [], []
        for c, n in enumerate(sizes):
            # ReLU-like features: non-negative, away from the origin, with unequal spread per class
            hs.append(torch.relu(torch.randn(n, dim, generator=g) * (1 + c) + 1.5))
            ys.append(torch.full((n,), c))
        order = torch.randperm(sum(sizes), generator=g)
        cases.append((torch.cat(hs)[order], torch.cat(ys)[order]))
    return cases


def _flattening_candidates(h: torch.Tensor, y: torch.Tensor) -> tuple[tuple[float, float], list]:
    """The right (top, rest) and what typical mistakes give, as (hint, (top, rest)) pairs."""
    svals = list(class_singular_values(h, y).values())
    counts = [int((y == c).sum()) for c in torch.unique(y).tolist()]

    def mean(xs: Sequence[float]) -> float:
        return sum(xs) / len(xs)

    top = [float(s[0]) for s in svals]
    rest = [float(s[1:].sum()) for s in svals]
    right = (mean(top), mean(rest))
    centred = list(class_singular_values(h, y, center=True).values())
    cov_eigs, gram_eigs = [], []
    for c in torch.unique(y).tolist():
        H = h[y == c].double()
        Hc = H - H.mean(0, keepdim=True)
        cov_eigs.append(torch.linalg.eigvalsh(Hc.T @ Hc / (H.shape[0] - 1)).flip(0).clamp(min=0))
        gram_eigs.append(torch.linalg.eigvalsh(H.T @ H).flip(0).clamp(min=0))
    pooled = torch.linalg.svdvals(h)
    weighted = sum(n * t for n, t in zip(counts, top, strict=True)) / sum(counts)
    weighted_rest = sum(n * r for n, r in zip(counts, rest, strict=True)) / sum(counts)
    wrong = [
        ("you summed over the classes; the paper's numbers are AVERAGES over classes (divide by the "
         "number of classes).", (sum(top), sum(rest))),
        ('"the sum of the others" leaves out the largest singular value: use s[1:].sum(), not s.sum().',
         (right[0], mean([float(s.sum()) for s in svals]))),
        ("you took only the second singular value; the measure is the sum of ALL the singular values "
         "after the first, s[1:].sum().", (right[0], mean([float(s[1]) for s in svals]))),
        ("those are eigenvalues of the class covariance matrix (variances), not singular values of the "
         "class's matrix of representations: use torch.linalg.svdvals(H) on the raw rows H of one class.",
         (mean([float(e[0]) for e in cov_eigs]), mean([float(e[1:].sum()) for e in cov_eigs]))),
        ("those are eigenvalues of H^T H, the SQUARES of the singular values: take torch.linalg.svdvals(H) "
         "(or the square roots).",
         (mean([float(e[0]) for e in gram_eigs]), mean([float(e[1:].sum()) for e in gram_eigs]))),
        ("you subtracted each class's mean first. The paper's measure (and this exercise) uses the raw, "
         "uncentred representations; centring is a different question (spread around the mean).",
         (mean([float(s[0]) for s in centred]), mean([float(s[1:].sum()) for s in centred]))),
        ("you took the singular values of all examples together; the measure is per class: one matrix "
         "per class, then the average over classes.", (float(pooled[0]), float(pooled[1:].sum()))),
        ("you weighted the classes by their number of examples; average over classes with equal weight.",
         (weighted, weighted_rest)),
    ]
    return right, wrong


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def check_flattening_summary(flattening_summary: Callable, strict: bool = False) -> Feedback:
    """Check ``flattening_summary(h, labels) -> (top, rest)``.

    The expected answer: for each class ``c``, the singular values ``s_1 >= s_2 >= ...`` of
    the matrix whose rows are the (uncentred) representations of the examples of class
    ``c``; ``top`` is the average over classes of ``s_1`` and ``rest`` the average over
    classes of ``s_2 + s_3 + ...``.
    """
    problem = check_callable(flattening_summary, "flattening_summary")
    if problem is not None:
        return finish(problem, strict)
    for h, y in _flattening_cases():
        out, problem = call(flattening_summary, h.clone(), y.clone())
        if problem is not None:
            return finish(problem, strict)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            return finish(hint("return a pair (top, rest): the average largest singular value and the "
                               "average sum of the others."), strict)
        top, problem = as_float(out[0], "top")
        if problem is None:
            rest, problem = as_float(out[1], "rest")
        if problem is not None:
            return finish(problem, strict)
        right, wrong = _flattening_candidates(h, y)
        if _close(top, right[0]) and _close(rest, right[1]):
            continue
        for message, (wt, wr) in wrong:
            if _close(top, wt) and _close(rest, wr):
                return finish(hint(message), strict)
        which = "top" if not _close(top, right[0]) else "rest"
        return finish(hint(f"you returned ({top:.5g}, {rest:.5g}) where ({right[0]:.5g}, {right[1]:.5g}) was "
                           f"expected; `{which}` is off."), strict)
    return finish(passed("your summary matches the paper's measure: per class singular values, the largest "
                         "and the sum of the others, each averaged over classes."), strict)


def _as_layer(value: object) -> int | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _draws(sample_layer: Callable, eligible: tuple[int, ...], n: int,
           seed: int) -> tuple[list[int] | None, Feedback | None]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        value, problem = call(sample_layer, eligible, g)
        if problem is not None:
            return None, problem
        layer = _as_layer(value)
        if layer is None:
            return None, hint(f"return the layer as a Python int (use int(...)), not {type(value).__name__} "
                              f"{value!r}.")
        out.append(layer)
    return out, None


def check_sample_layer(sample_layer: Callable, strict: bool = False) -> Feedback:
    """Check ``sample_layer(eligible, generator) -> int``.

    The expected answer is one element of the tuple ``eligible`` drawn uniformly at random
    with the ``torch.Generator`` ``generator``, so that equally seeded generators give
    equal draws.
    """
    problem = check_callable(sample_layer, "sample_layer")
    if problem is not None:
        return finish(problem, strict)
    n = 3000
    for eligible in [(0, 2, 3), (0, 1, 2, 3, 4), (1, 3), (2,)]:
        draws, problem = _draws(sample_layer, eligible, n, seed=5)
        if problem is not None:
            return finish(problem, strict)
        again, problem = _draws(sample_layer, eligible, n, seed=5)
        if problem is not None:
            return finish(problem, strict)
        if draws != again:
            return finish(hint("two equally seeded generators gave different layers: draw with the generator "
                               "you are given, e.g. torch.randint(..., generator=generator)."), strict)
        seen = set(draws)
        outside = sorted(seen - set(eligible))
        if outside:
            if seen <= set(range(len(eligible))):
                msg = (f"with eligible = {eligible} you returned {outside}, which are positions in the tuple, "
                       "not layers: draw a position i, then return eligible[i].")
            elif seen <= set(range(max(eligible) + 2)):
                msg = (f"with eligible = {eligible} you returned layers {outside} that are not in the set: draw "
                       "a position in the tuple and return eligible[i], rather than a number up to the largest "
                       "layer.")
            else:
                msg = f"with eligible = {eligible} you returned layers {outside} outside the set."
            return finish(hint(msg), strict)
        missing = sorted(set(eligible) - seen)
        if missing:
            if 0 in missing:
                msg = (f"with eligible = {eligible}, layer 0 (input mixup) never came up in {n} draws. It is "
                       "part of the set and must be drawn as often as the others.")
            elif max(eligible) in missing:
                msg = (f"with eligible = {eligible}, the last layer {max(eligible)} never came up in {n} draws: "
                       "torch.randint(high, ...) excludes `high`, so use high = len(eligible).")
            else:
                msg = f"with eligible = {eligible}, the layers {missing} never came up in {n} draws."
            return finish(hint(msg), strict)
        p = 1 / len(eligible)
        sd = (n * p * (1 - p)) ** 0.5
        for layer in eligible:
            count = draws.count(layer)
            if abs(count - n * p) > 5 * sd + 1e-9:
                return finish(hint(f"with eligible = {eligible}, layer {layer} came up {count} times in {n} draws, "
                                   f"far from the {n * p:.0f} a uniform choice gives: every eligible layer must be "
                                   "equally likely."), strict)
    return finish(passed("your sampler draws every eligible layer, only eligible layers, uniformly and "
                         "repeatably from the generator."), strict)
