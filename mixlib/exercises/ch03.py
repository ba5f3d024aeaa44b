"""Checkers for chapter 3, manifold mixup."""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..flatness import class_singular_values
from ..manifold import StagedNet, mlp
from . import Feedback, as_float, call, checker, form_hint, given_arguments, hint, passed, prefixed, staged


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


def _draws(sample_layer: Callable, eligible: tuple[int, ...], n: int,
           seed: int) -> tuple[list[int] | None, Feedback | None]:
    g = torch.Generator().manual_seed(seed)
    start = g.get_state()
    out = []
    for i in range(n):
        if i == 200 and len(eligible) > 1 and len(set(out)) == 1:
            return None, _same_layer_hint(eligible, out[0], i)
        if i == 50 and torch.equal(start, g.get_state()) and len(set(out)) > 1:
            return None, hint("your function never drew from `generator` (its state did not change in 50 calls): "
                              "the position must be drawn from it, so that the caller controls the randomness.",
                              "Draw it with torch.randint(..., generator=generator).")
        value, problem = call(sample_layer, eligible, g)
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
