"""Checkers for chapter 3, manifold mixup."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..flatness import class_singular_values
from ..manifold import StagedNet, mlp
from . import Feedback, as_float, call, checker, float_note, form_hint, given_arguments, hint, passed, prefixed, staged
from .runner import CallWatcher, code_objects


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
        what = "None: did you forget the `return` statement?" if out is None else f"{type(out).__name__}."
        return None, form_hint(f"return the network's output, a tensor of logits; you returned {what}")
    if tuple(out.shape) != (x.shape[0], 3):
        return None, form_hint(f"the output should have shape {(x.shape[0], 3)}, one row of logits per example; "
                          f"yours has shape {tuple(out.shape)}. Return the network's output, after continuing "
                          "the forward pass from the mixed hidden state with model.forward_from.")
    return out, None


def _grads(out: torch.Tensor, params: list[torch.Tensor], weights: torch.Tensor) -> list[torch.Tensor | None]:
    """The gradient of ``sum(weights * out)`` with respect to each parameter (``None`` where none flows)."""
    loss = (out.to(weights.dtype) * weights).sum()
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def _block_of(name: str) -> int | None:
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def _disambiguate(mix_hidden: Callable, model: StagedNet, x: torch.Tensor, perm: torch.Tensor,
                  cases: list[tuple], keys: set[str]) -> set[str]:
    """Of the mistakes ``keys`` that all fit one case, those that also fit the learner's output on the others.

    For example, on a network with a linear head, mixing at the head's input and mixing the logits give
    the same output; at a lower layer they differ.
    """
    for layer, lam_, _, _, wrong in cases:
        out, problem = _mixed_outputs(mix_hidden, model, x, layer, lam_, perm)
        if problem is not None:
            return keys
        got = out.detach().to("cpu", torch.float64)
        fits = {key for key, _, value in wrong if key in keys and torch.allclose(got, value, atol=1e-5, rtol=1e-4)}
        if fits:
            keys = fits
        if len(keys) == 1:
            break
    return keys


@checker("mix_hidden(model, x, layer, lam, perm)",
         nudge="Look at where the mixing happens: the hidden states at the requested layer are mixed with their "
               "partners' and the rest of the network runs on the mix, with gradients flowing through every step.",
         shortcuts=("mixlib.manifold.StagedNet.forward_mixed", "mixlib.manifold.mix_at", _mix_from))
def check_mix_hidden(mix_hidden: Callable) -> Feedback:
    """Check ``mix_hidden(model, x, layer, lam, perm) -> logits``.

    The expected answer is the output of the :class:`~mixlib.manifold.StagedNet` ``model``
    when the hidden states at ``layer`` (``model.features(x, layer)``) are replaced by
    ``lam * h + (1 - lam) * h[perm]`` and the forward pass continues from there
    (``model.forward_from``), with gradients flowing into every layer: the checker compares
    the gradient of a fixed weighted sum of the output with respect to every parameter, too.
    Any floating dtype of the output is accepted.
    """
    model, (x, perm) = _net(), _batch()
    lam = 0.3
    names = [n for n, _ in model.named_parameters()]
    weights = torch.randn(x.shape[0], 3, generator=torch.Generator().manual_seed(31), dtype=torch.float64)
    cases = []
    for layer, lam_ in ((2, lam), (0, lam), (3, lam), (1, lam), (2, 1.0)):  # references first
        expected = _mix_from(model, x, layer, lam_, perm)
        grads = [g.double() for g in _grads(expected, list(model.parameters()), weights)]
        with torch.no_grad():
            expected = expected.double()
            plain = model(x).double()
            wrong = [
                ("plain", "your output is the ordinary forward pass: nothing was mixed. Mixing only the targets is "
                 "not manifold mixup; the hidden states h = model.features(x, layer) must be mixed too.", plain),
            ]
            for off in (-1, 1):
                k = layer + off
                if 0 <= k <= len(model.blocks):
                    head_note = (f" (layer {k} is the input of the linear head, so mixing there is also the same "
                                 "as mixing the logits)" if k == len(model.blocks) else "")
                    wrong.append((f"off{off:+d}", staged(
                        f"you mixed at layer {k} instead of layer {layer}: an off-by-one{head_note}. Layer k is "
                        "the INPUT to block k (layer 0 is x itself).",
                        "Use model.features(x, layer) and model.forward_from(mixed, layer) with the same `layer`."),
                        _mix_from(model, x, k, lam_, perm).double()))
            wrong += [
                ("logits", staged("you mixed the outputs (logits) instead of the hidden states at `layer`.",
                                  "Mix h = model.features(x, layer), then continue with "
                                  "model.forward_from(mixed, layer)."),
                 lam_ * plain + (1 - lam_) * plain[perm]),
                ("partners", staged("your output is the partners' forward pass, model(x[perm]), which is also what "
                                    "applying perm to both sides gives: each example must be mixed with its "
                                    "partner.", "The mix is lam * h + (1 - lam) * h[perm], not "
                                    "lam * h[perm] + (1 - lam) * h[perm] = h[perm]."),
                 _mix_from(model, x, layer, lam_, perm, both=True).double()),
                ("swapped",
                 "the weights are swapped: the example itself gets lam and its partner h[perm] gets 1 - lam.",
                 _mix_from(model, x, layer, lam_, perm, a=1 - lam_).double()),
                ("half", "you mixed half and half, (h + h[perm]) / 2; the weights are lam for the example and "
                 "1 - lam for its partner h[perm].", _mix_from(model, x, layer, lam_, perm, a=0.5).double()),
            ]
        cases.append((layer, lam_, expected, grads, wrong))

    for layer, lam_, expected, grads, wrong in cases:
        out, problem = _mixed_outputs(mix_hidden, model, x, layer, lam_, perm)
        if problem is not None:
            return problem
        got = out.detach().to("cpu", torch.float64)
        if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            matches = [(key, message) for key, message, value in wrong
                       if torch.allclose(got, value, atol=1e-5, rtol=1e-4)]
            if len(matches) > 1:  # two mistakes give the same output here: let the other cases decide
                keys = _disambiguate(mix_hidden, model, x, perm, cases, {key for key, _ in matches})
                matches = [m for m in matches if m[0] in keys] or matches
            if matches:
                return prefixed(f"at layer {layer} with lam = {lam_}: ", hint(matches[0][1]))
            if lam_ == 1.0:
                return hint("with lam = 1 the mix is h itself, so the output should be the ordinary forward "
                            "pass model(x); yours is not.")
            return hint(f"at layer {layer} with lam = {lam_} your output is not the forward pass continued from "
                        "the mixed hidden states (it matches none of the usual mistakes either).",
                        "Compute h = model.features(x, layer), mix it into lam * h + (1 - lam) * h[perm], then "
                        "return model.forward_from(mixed, layer).")
        if not out.requires_grad:
            return hint(f"at layer {layer}: your output carries no gradient. Do not wrap the forward pass in "
                        "torch.no_grad(), call .detach() or convert to NumPy: manifold mixup trains the layers "
                        "before the mixing point too.")
        given_model = given_arguments()[0]
        got_grads = _grads(out, list(given_model.parameters()), weights)
        starved = sorted({b for n, g, ref in zip(names, got_grads, grads, strict=True)
                          if (g is None or not bool(g.abs().sum() > 0)) and bool(ref.abs().sum() > 0)
                          and (b := _block_of(n)) is not None})
        if starved:
            return hint(f"at layer {layer}: no gradient reaches block(s) {', '.join(map(str, starved))}, before the "
                        "mixing point. The hidden states h were detached (.detach(), torch.no_grad(), or a copy "
                        "made with torch.tensor(h)); compute h = model.features(x, layer) with gradients on, so "
                        "that manifold mixup also trains the layers that produce h.")
        if not all(g is not None and torch.allclose(g.double(), ref, atol=1e-6, rtol=1e-4)
                   for g, ref in zip(got_grads, grads, strict=True)):
            return hint(f"at layer {layer}: your output has the right values, but its gradient with respect to "
                        "the model's parameters is not that of the mixed forward pass. Keep every step in torch "
                        "(no detour through NumPy or .item()), and do not mix with a detached copy of h.")
    return passed("your function mixes the hidden states at the requested layer and continues the forward pass "
                  "from there, at layers 0 (input mixup) to 3, and gradients reach every layer.")


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
        (staged('"the sum of the others" leaves out the largest singular value.', "Use s[1:].sum(), not s.sum()."),
         (right[0], mean([float(s.sum()) for s in svals]))),
        (staged("you took only the second singular value; the measure is the sum of ALL the singular values "
                "after the first.", "That is s[1:].sum()."), (right[0], mean([float(s[1]) for s in svals]))),
        (staged("those are eigenvalues of the class covariance matrix (variances), not singular values of the "
                "class's matrix of representations.", "Use torch.linalg.svdvals(H) on the raw rows H of one class."),
         (mean([float(e[0]) for e in cov_eigs]), mean([float(e[1:].sum()) for e in cov_eigs]))),
        (staged("those are eigenvalues of H^T H, the SQUARES of the singular values.",
                "Take torch.linalg.svdvals(H) (or the square roots)."),
         (mean([float(e[0]) for e in gram_eigs]), mean([float(e[1:].sum()) for e in gram_eigs]))),
        ("you subtracted each class's mean first. The paper's measure (and this exercise) uses the raw, "
         "uncentred representations; centring is a different question (spread around the mean).",
         (mean([float(s[0]) for s in centred]), mean([float(s[1:].sum()) for s in centred]))),
        ("you took the singular values of all examples together; the measure is per class: one matrix "
         "per class, then the average over classes.", (float(pooled[0]), float(pooled[1:].sum()))),
        ("you weighted the classes by their number of examples; average over classes with equal weight.",
         (weighted, weighted_rest)),
        (staged("you left out the last class: range(labels.max()) stops before it.",
                "Loop over labels.unique() (or range(labels.max() + 1))."), (mean(top[:-1]), mean(rest[:-1]))),
        ("you divided the singular values of each class by its number of examples; the measure uses the "
         "singular values of the raw matrix of the class's rows.",
         (mean([t / n for t, n in zip(top, counts, strict=True)]),
          mean([r / n for r, n in zip(rest, counts, strict=True)]))),
    ]
    return right, wrong


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


@checker("flattening_summary(h, labels)",
         nudge="Look at what gets decomposed and how the classes are combined: one matrix of raw (uncentred) rows "
               "per class, its largest singular value set apart from all the others, then an average over the "
               "classes with equal weight.",
         shortcuts=("mixlib.flatness.flattening_summary",
                    ("mixlib.flatness.class_singular_values", "the singular values of each class, the heart of "
                                                              "this exercise"),
                    _flattening_candidates))
def check_flattening_summary(flattening_summary: Callable) -> Feedback:
    """Check ``flattening_summary(h, labels) -> (top, rest)``.

    The expected answer: for each class ``c``, the singular values ``s_1 >= s_2 >= ...`` of
    the matrix whose rows are the (uncentred) representations of the examples of class
    ``c``; ``top`` is the average over classes of ``s_1`` and ``rest`` the average over
    classes of ``s_2 + s_3 + ...``.
    """
    cases = [(h, y, *_flattening_candidates(h, y)) for h, y in _flattening_cases()]  # references first
    for h, y, right, wrong in cases:
        out, problem = call(flattening_summary, h, y)
        if problem is not None:
            return problem
        if isinstance(out, (torch.Tensor, np.ndarray)) and out.ndim == 1:
            out = list(out)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            return form_hint("return a pair (top, rest): the average largest singular value and the "
                             "average sum of the others, as in `return top, rest`.")
        top, problem = as_float(out[0], "top")
        if problem is None:
            rest, problem = as_float(out[1], "rest")
        if problem is not None:
            return problem
        if _close(top, right[0]) and _close(rest, right[1]):
            continue
        for message, (wt, wr) in wrong:
            if _close(top, wt) and _close(rest, wr):
                return hint(message)
        if _close(top, right[1]) and _close(rest, right[0]):
            return form_hint("you returned the pair in the wrong order: (top, rest), the largest singular value "
                             "first.")
        sizes = ", ".join(str(int((y == c).sum())) for c in torch.unique(y).tolist())
        which = "top" if not _close(top, right[0]) else "rest"
        both = " and `rest`" if which == "top" and not _close(rest, right[1]) else ""
        return hint(f"on {len(torch.unique(y))} classes with {sizes} examples in {h.shape[1]} dimensions you "
                    f"returned ({top:.5g}, {rest:.5g}); `{which}`{both} is off, and it matches none of the usual "
                    "mistakes. Take the singular values of each class's rows, set the largest apart from the sum "
                    "of the others, and average both over the classes.",
                    "For each class c: s = torch.linalg.svdvals(h[labels == c]) (sorted, largest first); then "
                    "average s[0] and s[1:].sum() over the classes.")
    return passed("your summary matches the paper's measure: per class singular values, the largest "
                  "and the sum of the others, each averaged over classes.")


def _as_layer(value: object) -> int | None:
    """The learner's layer as an int, or ``None`` if it is not an integer.

    A Python ``int`` and a NumPy integer scalar (which hashes and compares like an ``int``) are
    accepted; tensors and arrays are not: the exercise asks for a Python ``int``, and a tensor
    behaves differently as a dictionary key or a set member.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _not_a_layer(value: object) -> Feedback:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "NumPy array"
        return form_hint(f"return the layer as a Python int (use int(...)), not a {kind} of shape "
                         f"{tuple(value.shape)}: used as a dictionary key or put in a set, a {kind} does not "
                         "behave like the layer number it holds (2 in {torch.tensor(2)} is False).")
    return form_hint(f"return the layer as a Python int (use int(...)), not {type(value).__name__} {value!r}.")


def _draws(sample_layer: Callable, eligible: tuple[int, ...], n: int, seed: int, extra: tuple = (),
           same_layer_check: bool = True) -> tuple[list[int] | None, Feedback | None]:
    """``n`` layers from ``sample_layer(eligible, *extra, generator)`` with one generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    start = g.get_state()
    out = []
    for i in range(n):
        if same_layer_check and i == 200 and len(eligible) > 1 and len(set(out)) == 1:
            return None, _same_layer_hint(eligible, out[0], i)
        if i == 50 and torch.equal(start, g.get_state()) and len(set(out)) > 1:
            how = "torch.multinomial(..., generator=generator)" if extra else "torch.randint(..., generator=generator)"
            return None, hint("your function never drew from `generator` (its state did not change in 50 calls): "
                              "the position must be drawn from it, so that the caller controls the randomness.",
                              f"Draw it with {how}.")
        value, problem = call(sample_layer, eligible, *extra, g)
        if problem is not None:
            return None, problem
        layer = _as_layer(value)
        if layer is None:
            return None, _not_a_layer(value)
        out.append(layer)
    return out, None


def _same_layer_hint(eligible: tuple[int, ...], layer: int, n: int) -> Feedback:
    return hint(f"with eligible = {eligible} your function returned the same layer, {layer}, on all of the first "
                f"{n} calls. Draw a new random position on every call, from `generator` itself: do not reseed it "
                "and do not create a new generator inside the function.")


@checker("sample_layer(eligible, generator)",
         nudge="Look at what you draw and with what: a position in the tuple of eligible layers, every position "
               "equally likely, drawn with the generator you are given and nothing else.",
         shortcuts=("mixlib.manifold.StagedNet.sample_layer",))
def check_sample_layer(sample_layer: Callable) -> Feedback:
    """Check ``sample_layer(eligible, generator) -> int``.

    The expected answer is one element of the tuple ``eligible`` drawn uniformly at random
    with the ``torch.Generator`` ``generator``, so that equally seeded generators give
    equal draws.
    """
    n = 3000
    for eligible in [(0, 2, 3), (0, 1, 2, 3, 4), (1, 3), (2,)]:
        draws, problem = _draws(sample_layer, eligible, n, seed=5)
        if problem is not None:
            return problem
        again, problem = _draws(sample_layer, eligible, n, seed=5)
        if problem is not None:
            return problem
        if draws != again:
            return hint("two equally seeded generators gave different layers: draw with the generator "
                        "you are given, and no other source of randomness (not random, numpy or torch's global "
                        "generator).", "For example torch.randint(..., generator=generator).")

        seen = set(draws)
        outside = sorted(seen - set(eligible))
        if outside:
            if seen <= set(range(len(eligible))):
                msg = staged(f"with eligible = {eligible} you returned {outside}, which are positions in the "
                             "tuple, not layers.", "Draw a position i, then return eligible[i].")
            elif seen <= set(range(max(eligible) + 2)):
                msg = staged(f"with eligible = {eligible} you returned layers {outside} that are not in the set: "
                             "a number up to the largest layer need not be eligible.",
                             "Draw a position i in the tuple and return eligible[i].")
            else:
                msg = f"with eligible = {eligible} you returned layers {outside} outside the set."
            return hint(msg)
        missing = sorted(set(eligible) - seen)
        if missing:
            if 0 in missing:
                msg = (f"with eligible = {eligible}, layer 0 (input mixup) never came up in {n} draws. It is "
                       "part of the set and must be drawn as often as the others.")
            elif max(eligible) in missing:
                msg = staged(f"with eligible = {eligible}, the last layer {max(eligible)} never came up in {n} "
                             "draws: torch.randint(high, ...) excludes `high`.", "Use high = len(eligible).")
            else:
                msg = f"with eligible = {eligible}, the layers {missing} never came up in {n} draws."
            return hint(msg)
        p = 1 / len(eligible)
        sd = (n * p * (1 - p)) ** 0.5
        for layer in eligible:
            count = draws.count(layer)
            if abs(count - n * p) > 5 * sd + 1e-9:
                return hint(f"with eligible = {eligible}, layer {layer} came up {count} times in {n} draws, "
                                   f"far from the {n * p:.0f} a uniform choice gives: every eligible layer must be "
                                   "equally likely.")
    return passed("your sampler draws every eligible layer, only eligible layers, uniformly and "
                         "repeatably from the generator.")


# ---------------------------------------------------------------------------------------------
# The chapter's exercises. (The three checkers above belong to the chapter's earlier exercises;
# the runner's and the guidance tests still use them as examples of a model, a measure and a sampler.)
# ---------------------------------------------------------------------------------------------

# --- Exercise 1: the effective rank of the classes -------------------------------------------


def _erank_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """ReLU-like hidden states in float32, classes of unequal size and spread. In each case one class
    has fewer rows than columns, and every class has a column that is zero for all its rows (a dead
    unit), so some eigenvalues of the class covariances are zero, and computed ones can be slightly
    negative."""
    g = torch.Generator().manual_seed(313)
    cases = []
    for sizes, dim in [((14, 5, 25), 7), ((20, 6), 9)]:
        hs, ys = [], []
        for c, n in enumerate(sizes):
            spread = torch.linspace(0.2, 1.0 + c, dim) ** 2  # unequal spread over the directions
            rows = torch.relu(torch.randn(n, dim, generator=g) * spread + 1.0)
            rows[:, c] = 0.0
            hs.append(rows)
            ys.append(torch.full((n,), c))
        order = torch.randperm(sum(sizes), generator=g)
        cases.append((torch.cat(hs)[order], torch.cat(ys)[order]))
    return cases


def _entropy_count(v: torch.Tensor, log: Callable = torch.log, sign: float = -1.0) -> float:
    """``exp(sign * sum p log p)`` for the shares ``p = v / sum v``, zero shares left out."""
    p = v / v.sum()
    p = p[p > 0]
    return float(torch.exp(sign * (p * log(p)).sum()))


def _erank_candidates(h: torch.Tensor, labels: torch.Tensor) -> tuple[float, list[tuple[str, float]]]:
    """The right mean effective rank, and what the usual mistakes give, as (hint, value) pairs."""
    classes = torch.unique(labels).tolist()
    groups = [h[labels == c].double() for c in classes]
    counts = [len(H) for H in groups]

    def mean(xs: Sequence[float]) -> float:
        return sum(xs) / len(xs)

    centred = [torch.linalg.svdvals(H - H.mean(0)) for H in groups]
    per = [_entropy_count(s**2) for s in centred]
    right = mean(per)
    p_logs = []
    for s in centred:
        p = s**2 / (s**2).sum()
        p = p[p > 0]
        p_logs.append(float(-(p * p.log()).sum()))
    wrong = [
        ("you did not subtract each class's mean: the uncentred rows also measure how far the class sits from "
         "the origin, which puts most of the weight on one share. Centre each class on its own mean first.",
         mean([_entropy_count(torch.linalg.svdvals(H) ** 2) for H in groups])),
        (staged("you made the shares from the singular values themselves; the covariance eigenvalues are the "
                "SQUARED singular values of the centred rows (divided by n_c - 1, which cancels in the shares).",
                "Use v = torch.linalg.svdvals(H - H.mean(0)) ** 2."),
         mean([_entropy_count(s) for s in centred])),
        (staged("you centred every example on its own mean over the features, the wrong axis. torch.cov treats "
                "each ROW as a variable, so torch.cov(H) is the covariance between examples.",
                "Centre with H - H.mean(0) (the class mean, over the rows), or use torch.cov(H.T)."),
         mean([_entropy_count(torch.linalg.svdvals(H - H.mean(1, keepdim=True)) ** 2) for H in groups])),
        ("you centred every class on the mean of ALL the examples; each class is centred on its own mean.",
         mean([_entropy_count(torch.linalg.svdvals(H - h.double().mean(0)) ** 2) for H in groups])),
        (staged("you returned the entropy of the shares; the effective rank is its exponential.",
                "Return exp(-(p * log p).sum()), then average over classes."), mean(p_logs)),
        (staged("your value is the reciprocal of the effective rank: the minus sign is missing in the exponent "
                "(p log p is negative or zero).", "The count is exp(-(p * p.log()).sum())."),
         mean([_entropy_count(s**2, sign=1.0) for s in centred])),
        (staged("you mixed the bases: the entropy was taken with log2 (or log10) but exponentiated with exp.",
                "Use the natural log with exp (or 2 ** with log2)."),
         mean([_entropy_count(s**2, log=torch.log2) for s in centred])),
        ("that is the participation ratio, (sum v)^2 / sum v^2, another count of directions; the exercise asks "
         "for the effective rank, the exponential of the entropy of the shares.",
         mean([float((s**2).sum() ** 2 / (s**4).sum()) for s in centred])),
        ("you pooled all classes into one matrix; the measure is per class, each centred on its own mean, then "
         "averaged over classes.", _entropy_count(torch.linalg.svdvals(h.double() - h.double().mean(0)) ** 2)),
        ("you weighted the classes by their number of examples; average over classes with equal weight.",
         sum(n * v for n, v in zip(counts, per, strict=True)) / sum(counts)),
        ("you summed over the classes; average them instead, each class with equal weight.", sum(per)),
        (staged("you left out the last class: range(labels.max()) stops before it.",
                "Loop over labels.unique() (or range(labels.max() + 1))."), mean(per[:-1])),
    ]
    return right, wrong


_ZERO_SHARES = staged(
    "your result is NaN. Some shares are zero: a class with fewer examples than columns, or a column that is "
    "constant within a class, has zero variance in some directions, and eigvalsh can even return them as tiny "
    "negative numbers. Their logarithm is -inf or NaN, while p log p tends to 0 as p does.",
    "Keep only the positive shares before the logarithm: p = p[p > 0] (clamp eigvalsh's output at zero first).")


def _is_nan(value: object) -> bool:
    try:
        return math.isnan(float(value))  # a number, or a one-element tensor or array
    except (TypeError, ValueError, RuntimeError):
        return False


@checker("effective_rank(h, labels)",
         nudge="Look at what is measured for each class: how evenly its variance around its own mean spreads over "
               "the principal directions, turned into a number of directions through an entropy, then averaged over "
               "the classes with equal weight.",
         shortcuts=(("mixlib.flatness.class_dimension", "this count of directions with measure='effective_rank'"),
                    ("mixlib.flatness.class_singular_values", "the singular values of each class, the heart of "
                                                              "this exercise"),
                    _erank_candidates))
def check_effective_rank(effective_rank: Callable) -> Feedback:
    """Check ``effective_rank(h, labels) -> float``.

    The expected answer: for each class, the shares ``p_j = v_j / sum v`` of the eigenvalues ``v``
    of the covariance of its centred rows, then ``exp(-sum_j p_j log p_j)`` (zero shares left out),
    averaged over the classes with equal weight (what ``mixlib.flatness.class_dimension`` computes
    with ``measure="effective_rank"``).
    """
    cases = [(h, y, *_erank_candidates(h, y)) for h, y in _erank_cases()]  # references first
    for h, y, right, wrong in cases:
        out, problem = call(effective_rank, h, y)
        if problem is not None:
            return problem
        if _is_nan(out):
            return hint(_ZERO_SHARES)
        n_classes = len(torch.unique(y))
        per_class = isinstance(out, (list, tuple)) or (isinstance(out, (torch.Tensor, np.ndarray)) and out.ndim == 1)
        if per_class and len(out) == n_classes > 1:
            return form_hint(f"you returned {n_classes} numbers, one per class; the exercise asks for one number, "
                             "their average over the classes.")
        got, problem = as_float(out, "the effective rank")
        if problem is not None:
            return problem
        if math.isclose(got, right, rel_tol=1e-4, abs_tol=1e-6):
            continue
        for message, value in wrong:
            if math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6):
                return hint(message)
        sizes = ", ".join(str(int((y == c).sum())) for c in torch.unique(y).tolist())
        return hint(f"on {len(torch.unique(y))} classes with {sizes} examples in {h.shape[1]} dimensions you "
                    f"returned {got:.5g}, which matches none of the usual mistakes. Check each step: one class at "
                    "a time, centred on its own mean; squared singular values (or covariance eigenvalues); shares "
                    "that sum to one; exp of minus the sum of p log p; the mean over classes.",
                    "For each class: v = torch.linalg.svdvals(H - H.mean(0)) ** 2; p = v / v.sum(); "
                    "p = p[p > 0]; torch.exp(-(p * p.log()).sum()).")
    return passed("your effective rank is right, zero eigenvalues included." + float_note(out))


# --- Exercise 2: mixing with a forward hook ---------------------------------------------------


def _sequential() -> tuple[StagedNet, nn.Sequential]:
    """The small network of :func:`_net`, and the same modules as an ordinary ``nn.Sequential``."""
    model = _net()
    return model, nn.Sequential(*model.blocks, model.head)


def _sequential_mix(seq: nn.Sequential, x: torch.Tensor, layer: int, lam: float, perm: torch.Tensor,
                    a: float | None = None, both: bool = False) -> torch.Tensor:
    """``seq`` run with its hidden states at ``layer`` (the output of ``seq[layer - 1]``) mixed, stage by
    stage; ``a`` overrides the weight of the example itself, ``both`` applies ``perm`` to both sides."""
    h = seq[:layer](x)
    w = lam if a is None else a
    first = h[perm] if both else h
    return seq[layer:](w * first + (1 - w) * h[perm])


_HOOK_REGISTRATIONS = {code: True for fn in (nn.Module.register_forward_hook, nn.Module.register_forward_pre_hook,
                                             nn.modules.module.register_module_forward_hook,
                                             nn.modules.module.register_module_forward_pre_hook)
                       for code in code_objects(fn)}


def _has_hooks(seq: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in seq.modules())


@checker("mix_with_hook(seq, x, layer, lam, perm)",
         nudge="Look at which module's output is replaced, by what, and for how long: the hook sits on the stage "
               "whose output is the requested layer, what it returns takes the place of that output, and it is gone "
               "again when your function returns.",
         shortcuts=("mixlib.manifold.mix_at", "mixlib.manifold.StagedNet.forward_mixed", _sequential_mix))
def check_mix_with_hook(mix_with_hook: Callable) -> Feedback:
    """Check ``mix_with_hook(seq, x, layer, lam, perm) -> logits``.

    ``seq`` is an ``nn.Sequential`` of three blocks and a linear head; layer ``k >= 1`` is the
    output of ``seq[k - 1]`` and layer 0 the input. The expected answer is ``seq``'s output when a
    forward hook replaces that output by ``lam * out + (1 - lam) * out[perm]`` (at layer 0:
    ``seq`` run on ``lam * x + (1 - lam) * x[perm]``): the output of
    :meth:`mixlib.manifold.StagedNet.forward_mixed` at layer ``k`` of the same network, with
    gradients reaching every stage before the mix. The hook must be gone when the function returns.
    """
    model, seq = _sequential()
    x, perm = _batch()
    weights = torch.randn(x.shape[0], 3, generator=torch.Generator().manual_seed(37), dtype=torch.float64)
    top = len(seq) - 1  # the input of the head
    cases = []
    for layer, lam in ((2, 0.3), (1, 0.3), (top, 0.3), (0, 0.3), (1, 0.8)):  # references first
        expected = model.forward_mixed(x, layer, lam, perm)
        grads = [g.double() for g in _grads(expected, list(seq.parameters()), weights)]
        with torch.no_grad():
            plain = seq(x).double()
            wrong = [("plain", staged("nothing was mixed: your output is the ordinary forward pass. What a forward "
                                      "hook RETURNS replaces the module's output; a hook that only rebinds `out` "
                                      "inside, or a hook registered after the forward pass, changes nothing.",
                                      "End the hook with `return lam * out + (1 - lam) * out[perm]`."), plain)]
            for k in (layer + 1, layer - 1):
                if 0 <= k < len(seq):
                    where = (f"the output of seq[{k - 1}]" if k > 0 else "the input x itself")
                    fix = ("Register the hook on seq[layer - 1] with register_forward_hook." if layer > 0 else
                           "At layer 0, run seq on lam * x + (1 - lam) * x[perm].")
                    wrong.append((f"layer{k}", staged(
                        f"you mixed at layer {k}, {where}, instead of layer {layer}: an off-by-one. Layer k is "
                        "the OUTPUT of seq[k - 1], which is also the input of seq[k]; layer 0 is the input x.",
                        fix), _sequential_mix(seq, x, k, lam, perm).double()))
            logits_hint = (
                staged("at layer 0 your hook sat on seq[layer - 1], which is seq[-1]: Python counts a negative "
                       "index from the end, so the hook was on the head and mixed the logits. Layer 0 is the "
                       "input x itself, with no stage before it.",
                       "At layer 0, run seq on lam * x + (1 - lam) * x[perm] (or mix the input of seq[0] with a "
                       "forward pre-hook).") if layer == 0 else
                staged("you mixed the outputs of the whole network (the logits), not the hidden states at "
                       "`layer`.", "Put the hook on seq[layer - 1], not on the last module.") if layer != top else "")
            wrong += [
                ("logits", logits_hint, lam * plain + (1 - lam) * plain[perm]),
                ("partners", staged("your output is the partners' forward pass, seq(x[perm]), which is what "
                                    "applying perm to both sides of the mix gives.",
                                    "The hook returns lam * out + (1 - lam) * out[perm]."),
                 _sequential_mix(seq, x, layer, lam, perm, both=True).double()),
                ("swapped", "the weights are swapped: the example itself gets lam and its partner out[perm] gets "
                 "1 - lam.", _sequential_mix(seq, x, layer, lam, perm, a=1 - lam).double()),
            ]
            wrong = [w for w in wrong if w[1]]
        cases.append((layer, lam, expected.detach().double(), grads, wrong))

    watcher = CallWatcher(_HOOK_REGISTRATIONS)
    for layer, lam, expected, grads, wrong in cases:
        with watcher:
            out, problem = call(mix_with_hook, seq, x, layer, lam, perm)
        if problem is not None:
            return problem
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x.shape[0], 3):
            what = ("None: did you forget the `return` statement?" if out is None else
                    f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__)
            return form_hint(f"return the output of seq(x), a tensor of logits of shape {(x.shape[0], 3)}; you "
                             f"returned {what}.")
        given = given_arguments()[0]
        got = out.detach().to("cpu", torch.float64)
        if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            for _, message, value in wrong:
                if torch.allclose(got, value, atol=1e-5, rtol=1e-4):
                    return prefixed(f"at layer {layer} with lam = {lam}: ", hint(message))
            if _has_hooks(given):
                return hint(f"at layer {layer}: your output is not the mixed forward pass, and your function left a "
                            "hook on the model, which would act on every later forward pass too.",
                            "Register one hook on seq[layer - 1] and remove it with handle.remove() in a `finally:` "
                            "block.")
            return hint(f"at layer {layer} with lam = {lam} your output is not the forward pass with the hidden "
                        "states mixed (and it matches none of the usual mistakes).",
                        "handle = seq[layer - 1].register_forward_hook(lambda module, inputs, out: lam * out + "
                        "(1 - lam) * out[perm]); run out = seq(x); then handle.remove() and return out.")
        if _has_hooks(given):
            return hint(f"at layer {layer}: the output is right, but your function left its hook on the model, so "
                        "every later forward pass of it would be mixed too (and a second call would mix twice).",
                        "Keep the handle that register_forward_hook returns and call handle.remove() before "
                        "returning, best in a `finally:` block.")
        if not out.requires_grad:
            return hint(f"at layer {layer}: your output carries no gradient. Do not run the forward pass under "
                        "torch.no_grad() or detach the result: manifold mixup trains the layers on both sides of "
                        "the mix.")
        got_grads = _grads(out, list(given.parameters()), weights)
        starved = sorted({int(n.split(".")[0]) for (n, _), g, ref in zip(given.named_parameters(), got_grads, grads,
                                                                         strict=True)
                          if (g is None or not bool(g.abs().sum() > 0)) and bool(ref.abs().sum() > 0)})
        if starved:
            return hint(f"at layer {layer}: no gradient reaches seq[{'], seq['.join(map(str, starved))}], before the "
                        "mixing point: the hook detached the hidden states (.detach(), torch.no_grad(), or a copy "
                        "made with torch.tensor). Mix `out` itself, so that the stages before the mix are trained.")
        if not all(g is not None and torch.allclose(g.double(), ref, atol=1e-6, rtol=1e-4)
                   for g, ref in zip(got_grads, grads, strict=True)):
            return hint(f"at layer {layer}: your output has the right values, but its gradient with respect to the "
                        "parameters is not that of the mixed forward pass. Keep every step in torch, on `out` "
                        "itself.")
    if not watcher.hit:
        return form_hint("your output and its gradients are right, but your function never registered a hook: it "
                         "must have run the stages one by one. That works for nn.Sequential only; the exercise asks "
                         "for a forward hook, which reaches inside any model. Register one with "
                         "seq[layer - 1].register_forward_hook(...).")
    return passed("your function mixes at layers 0 to 3, with gradients, and its hook is removed.")


# --- Exercise 3: drawing the layer with weights -----------------------------------------------

#: (eligible, weights): a normalised case, an unnormalised one, zero weights at both ends, a single layer.
_WEIGHTED_CASES = [((0, 1, 2), (0.2, 0.5, 0.3)), ((0, 2, 3), (1.0, 2.0, 5.0)),
                   ((1, 3, 4, 5), (0.0, 3.0, 1.0, 0.0)), ((2,), (4.0,))]


def _layer_probabilities(eligible: tuple[int, ...], weights: tuple[float, ...]) -> list[float]:
    """The probability of each position of ``eligible``: its weight over the sum of the weights."""
    total = sum(weights)
    return [w / total for w in weights]


def _weighted_mistakes(weights: tuple[float, ...]) -> list[tuple[str, list[float]]]:
    """What the usual mistakes draw, as (hint, probability of each position)."""
    n = len(weights)
    right = _layer_probabilities(tuple(range(n)), weights)
    running, unnormalised = 0.0, []
    for w in weights:  # a uniform number in [0, 1) compared with the running sum of the raw weights
        unnormalised.append(max(0.0, min(running + w, 1.0) - min(running, 1.0)))
        running += w
    soft = torch.softmax(torch.tensor(weights, dtype=torch.float64), 0).tolist()
    return [
        ("every eligible layer came up about equally often: your sampler ignores the weights.",
         [1 / n] * n),
        (staged("the weights are off by one position: layer eligible[i] comes up as often as the weight of its "
                "neighbour says.", "Draw a position i with probabilities weights / weights.sum() and return "
                "eligible[i], with the same i (no +1 or -1)."), right[1:] + right[:1]),
        (staged("the weights are off by one position: layer eligible[i] comes up as often as the weight of its "
                "neighbour says.", "Draw a position i with probabilities weights / weights.sum() and return "
                "eligible[i], with the same i (no +1 or -1)."), right[-1:] + right[:-1]),
        ("you paired the weights with the layers in reverse order.", right[::-1]),
        (staged("you compared a uniform number in [0, 1) with the running sum of the weights without dividing "
                "by their total, so the layers after the point where the sum passes 1 never come up.",
                "Divide the running sum by weights.sum(), or let torch.multinomial normalise for you."),
         unnormalised),
        ("you turned the weights into probabilities with a softmax; the probability of a layer is its weight "
         "divided by the SUM of the weights.", soft),
    ]


def _fits(counts: list[int], probs: list[float], n: int) -> bool:
    """Whether the counts of ``n`` draws fit the probabilities: within 5 standard deviations, none where 0."""
    for count, p in zip(counts, probs, strict=True):
        if p <= 0.0:
            if count:
                return False
        elif abs(count - n * p) > 5 * (n * p * (1 - p)) ** 0.5 + 1e-9:
            return False
    return True


@checker("sample_layer(eligible, weights, generator)",
         nudge="Look at how likely each layer is and where the randomness comes from: a position in the tuple, "
               "chosen in proportion to its weight among all the weights, drawn with the generator you are given "
               "and nothing else.",
         shortcuts=("mixlib.manifold.StagedNet.sample_layer", _layer_probabilities))
def check_sample_weighted_layer(sample_layer: Callable) -> Feedback:
    """Check ``sample_layer(eligible, weights, generator) -> int``.

    The expected answer is one element of the tuple ``eligible``, ``eligible[i]`` drawn with
    probability ``weights[i] / sum(weights)`` (the weights are non-negative floats; zero weights are
    never drawn), as a Python ``int``, with the ``torch.Generator`` ``generator`` as the only source of
    randomness, so that equally seeded generators give equal draws. The check draws 3000 layers per
    case (and 300 again, with an equally seeded generator) and accepts counts within five standard
    deviations of the expected ones.
    """
    for eligible, weights in _WEIGHTED_CASES:
        n = 3000 if len(eligible) > 1 else 300
        draws, problem = _draws(sample_layer, eligible, n, seed=7, extra=(weights,), same_layer_check=False)
        if problem is not None:
            return problem
        again, problem = _draws(sample_layer, eligible, 300, seed=7, extra=(weights,), same_layer_check=False)
        if problem is not None:
            return problem
        if draws[:300] != again:
            return hint("two equally seeded generators gave different layers: draw with the generator you are "
                        "given, and no other source of randomness (not random, numpy or torch's global "
                        "generator).", "For example torch.multinomial(..., generator=generator).")
        case = f"with eligible = {eligible} and weights = {weights}"
        outside = sorted(set(draws) - set(eligible))
        if outside:
            if set(draws) <= set(range(len(eligible))):
                return hint(staged(f"{case} you returned {outside}, which are positions in the tuple, not layers.",
                                   "Draw a position i, then return eligible[i]."))
            return hint(f"{case} you returned layers {outside} outside the eligible set.")
        counts = [draws.count(layer) for layer in eligible]
        if _fits(counts, _layer_probabilities(eligible, weights), n):
            continue
        for message, probs in _weighted_mistakes(weights):
            if _fits(counts, probs, n):
                return prefixed(f"{case}: ", hint(message))
        if len(set(draws)) == 1 and len(eligible) > 1:
            return _same_layer_hint(eligible, draws[0], n)
        never = [layer for layer, w, c in zip(eligible, weights, counts, strict=True) if w == 0 and c]
        if never:
            return hint(f"{case}, layers {never} have weight 0 but came up: a layer of weight zero must never be "
                        "drawn.")
        worst = max(range(len(eligible)), key=lambda i: abs(counts[i] / n - weights[i] / sum(weights)))
        return hint(f"{case}, layer {eligible[worst]} came up {counts[worst]} times in {n} draws, far from what "
                    f"its weight {weights[worst]:g} out of a total of {sum(weights):g} gives.",
                    "Draw the position with torch.multinomial(torch.tensor(weights), 1, generator=generator).")
    return passed("each layer comes up in proportion to its weight, repeatably.")
