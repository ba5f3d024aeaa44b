"""Benchmarks for the speed budgets of mixlib (the README's "Speed budgets" table).

Run with ``.venv/bin/python bench/bench.py``. Prints these ratios, each with its budget:

1. mixlib's manifold-mixup training step (the one :func:`mixlib.fit` takes) / the same step written
   by hand in plain torch (budget 1.05); the manifold-mixup step / an ERM step is printed for
   information (on a small MLP it measures Python overhead, not the cost of mixing);
2. ``gradient_terms`` for B = 256 pairs / computing the gradient of the same mixed loss with
   autograd, forward and backward (budget 4); the ratio to the backward call alone is printed too;
3. ``mixup`` / the same formula written by hand on a 256x3x32x32 batch (budget 1.25: the price of
   its checks); ``mixup`` / ``torch.lerp(x[perm], x, lam)`` for information (the formula as written
   makes three passes where lerp makes one);
4. K = 16 seeds of a digits MLP (64-128-128-10, batch 64, 20 epochs of manifold mixup) trained as
   one ensemble by :func:`mixlib.ensemble.fit_ensemble` / 16 sequential :func:`mixlib.fit` calls
   (budget 0.25); three rounds of one timing each, wall clock, with torch's default thread
   count; the median of the three ratios counts; the same with the ensemble's plain autograd path
   (``fast=False``) instead of its hand-written backward, for information;
5. K = 16 members of one recipe as one ensemble / ONE :func:`mixlib.fit` of the same recipe, on one
   thread (chapter 06's use: many seeds for the price of a few): widths 64-64 for 60 epochs
   (budget 1.5) and 128-128 for 20 epochs (budget 2.5); median of three paired rounds.

Each comparison warms up both sides, then times them in alternating order (so that drifts in
machine load hit both alike), many repeats of a few calls each; the ratio is the median over
repeats of the ratio of neighbouring timings. torch's thread count is left at its default. The
load average is printed because a busy machine inflates these ratios: on a 2-core machine
each parallel torch operation then waits for a descheduled thread, so the ratio drifts toward
the ratio of operation counts. The exit status is 1 if a ratio is over budget.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from mixlib.data import digits
from mixlib.ensemble import fit_ensemble
from mixlib.gradients import gradient_terms
from mixlib.manifold import mlp
from mixlib.mixing import mixup, one_hot, random_pairing
from mixlib.recipe import draw, make_recipe, recipe_loss
from mixlib.seeding import seed_everything
from mixlib.train import fit

BATCH = 256


def compare(
    a: Callable[[], object], b: Callable[[], object], repeats: int, inner: int, warmup: int = 20
) -> tuple[float, float, float]:
    """Time ``a`` and ``b`` alternately; return their median seconds per call and the median ratio.

    Each repeat times ``inner`` calls of ``a`` next to ``inner`` calls of ``b`` (in alternating
    order), so that both see the same machine load; the ratio is the median over repeats of
    ``time(a) / time(b)``, which is more robust to load drifts than a ratio of medians.
    """
    for _ in range(warmup):
        a()
        b()
    times: dict[str, list[float]] = {"a": [], "b": []}
    for r in range(repeats):
        order = [("a", a), ("b", b)] if r % 2 == 0 else [("b", b), ("a", a)]
        for key, fn in order:
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[key].append((time.perf_counter() - start) / inner)
    ratios = [ta / tb for ta, tb in zip(times["a"], times["b"], strict=True)]
    return statistics.median(times["a"]), statistics.median(times["b"]), statistics.median(ratios)


def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.data[:BATCH], dtype=torch.float32) / 16.0
    y = torch.tensor(data.target[:BATCH], dtype=torch.long)
    return x, y


def bench_training_step() -> tuple[float, float, float, float, float, float]:
    """mixlib's manifold-mixup step vs the same step by hand, and vs an ERM step.

    A 64-256-256-256-10 ReLU MLP on a batch of 256 digits, SGD; mixlib's step is the one
    :func:`mixlib.fit` takes (:func:`mixlib.recipe.draw` then :func:`mixlib.recipe.recipe_loss`).
    """
    torch.manual_seed(0)
    x, y = digits_batch()
    model = mlp(64, [256, 256, 256], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)

    def erm_step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    recipe = make_recipe(model, method="manifold", alpha=2.0, num_classes=10)

    def manifold_step() -> None:
        choice = draw(recipe, BATCH, g)
        opt.zero_grad()
        recipe_loss(model, x, y, recipe, choice).backward()
        opt.step()

    def plain_torch_step() -> None:
        """The same manifold-mixup step written by hand, without mixlib (for reference)."""
        lam = float(np.random.default_rng(int(torch.randint(0, 2**63 - 1, (1,), generator=g))).beta(2.0, 2.0))
        perm = torch.randperm(BATCH, generator=g)
        layer = int(torch.randint(len(model.blocks) + 1, (1,), generator=g))
        opt.zero_grad()
        h = x
        for block in model.blocks[:layer]:
            h = block(h)
        h = lam * h + (1 - lam) * h[perm]
        for block in model.blocks[layer:]:
            h = block(h)
        out = model.head(h)
        (lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])).backward()
        opt.step()

    return (
        *compare(manifold_step, plain_torch_step, repeats=300, inner=4),
        *compare(manifold_step, erm_step, repeats=150, inner=4),
    )


def bench_ensemble(k: int = 16, epochs: int = 20, rounds: int = 3, fast: bool = True,
                   ) -> tuple[float, float, float, list[float]]:
    """Wall-clock seconds of K seeds as one ensemble and as K sequential fit calls, and their ratio.

    ``rounds`` pairs of timings, the two sides in alternating order (sequential first in even
    rounds), each pair on fresh models; returns the median times, the median of the per-round
    ratios and the ratios themselves. Both sides run with torch's default thread count
    (``seed_everything``, used to build the models, sets one thread; it is reset before timing):
    the stacked model's batched products are large enough to use both cores of the reference
    machine, a single small model's are not. That is part of what the ensemble buys.
    """
    kwargs = dict(method="manifold", alpha=2.0, epochs=epochs, batch_size=64, lr=1e-3, progress=False)
    return _ensemble_rounds(k, [128, 128], kwargs, rounds, fast=fast, fits=k, threads=torch.get_num_threads())


def bench_members_vs_one_fit(width: int, epochs: int, k: int = 16, rounds: int = 3,
                             ) -> tuple[float, float, float, list[float]]:
    """K members of one recipe as one ensemble vs ONE fit of that recipe, both on one thread."""
    kwargs = dict(method="manifold", alpha=2.0, epochs=epochs, batch_size=64, lr=1e-3, progress=False)
    return _ensemble_rounds(k, [width, width], kwargs, rounds, fast=True, fits=1, threads=1)


def _ensemble_rounds(k: int, hidden: list[int], kwargs: dict, rounds: int, *, fast: bool, fits: int,
                     threads: int) -> tuple[float, float, float, list[float]]:
    """``rounds`` paired timings of k members as one ensemble and of ``fits`` sequential fit calls."""
    data = digits(seed=0)
    before = torch.get_num_threads()

    def models() -> list[nn.Module]:
        built = []
        for seed in range(k):
            seed_everything(seed)
            built.append(mlp(64, hidden, 10))
        torch.set_num_threads(threads)
        return built

    def sequential() -> float:
        start = time.perf_counter()
        for seed, model in enumerate(built[:fits]):
            fit(model, data.x_train, data.y_train, seed=seed, **kwargs)
        return time.perf_counter() - start

    def together() -> float:
        start = time.perf_counter()
        fit_ensemble(built, data.x_train, data.y_train, seeds=list(range(k)), fast=fast, **kwargs)
        return time.perf_counter() - start

    t_ens, t_seq = [], []
    for r in range(rounds):
        for side in (sequential, together) if r % 2 == 0 else (together, sequential):
            built = models()
            (t_seq if side is sequential else t_ens).append(side())
    torch.set_num_threads(before)
    ratios = [e / s for e, s in zip(t_ens, t_seq, strict=True)]
    median = statistics.median
    return median(t_ens), median(t_seq), median(ratios), ratios


def bench_gradient_terms() -> tuple[float, float, float, float, float]:
    """gradient_terms for 256 pairs vs the autograd gradient of the same mixed squared loss.

    Returns the medians of gradient_terms, of forward+backward of the mixed loss and of the
    backward call alone, and the median paired ratios of the first to the second and third.
    """
    torch.manual_seed(0)
    x, labels = digits_batch()
    net = mlp(64, [256, 256, 256], 1)
    features, head = nn.Sequential(*net.blocks), net.head
    perm = random_pairing(BATCH, torch.Generator().manual_seed(1))
    x2, y = x[perm], labels.float()
    y2, lam = y[perm], 0.3
    params = list(features.parameters())

    def mixed_loss() -> torch.Tensor:
        mixed = head(lam * features(x) + (1 - lam) * features(x2))[:, 0]
        return 0.5 * (lam * y + (1 - lam) * y2 - mixed).pow(2).sum()

    def timed(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    for _ in range(10):
        gradient_terms(features, head, x, x2, y, y2, lam)
        torch.autograd.grad(mixed_loss(), params)
    t_terms, t_fb, t_b = [], [], []
    for _ in range(150):
        t_terms.append(timed(lambda: gradient_terms(features, head, x, x2, y, y2, lam)))
        t_fb.append(timed(lambda: torch.autograd.grad(mixed_loss(), params)))
        loss = mixed_loss()  # the forward pass, not timed
        t_b.append(timed(partial(torch.autograd.grad, loss, params)))
    median = statistics.median
    return (
        median(t_terms),
        median(t_fb),
        median(t_b),
        median([a / b for a, b in zip(t_terms, t_fb, strict=True)]),
        median([a / b for a, b in zip(t_terms, t_b, strict=True)]),
    )


def bench_mixup() -> tuple[float, float, float, float, float, float]:
    """mixup of a 256x3x32x32 batch (with one-hot targets) vs its formula by hand, and vs a fused lerp.

    The first ratio is mixup's own overhead (its checks: one pass over the batch for NaN and inf);
    the second compares the formula ``lam * x + (1 - lam) * x[perm]``, which mixlib writes out as
    the book does, with ``torch.lerp``, which computes the same in one pass.
    """
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32)
    y = one_hot(torch.randint(0, 10, (BATCH,)), 10)
    perm, lam = random_pairing(BATCH, torch.Generator().manual_seed(0)), 0.3

    def by_hand() -> tuple[torch.Tensor, torch.Tensor]:
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]

    t_mix, t_hand, r_hand = compare(lambda: mixup(x, y, lam, perm), by_hand, repeats=300, inner=3)
    t_mix2, t_lerp, r_lerp = compare(lambda: mixup(x, y, lam, perm),
                                     lambda: (torch.lerp(x[perm], x, lam), torch.lerp(y[perm], y, lam)),
                                     repeats=300, inner=3)
    return t_mix, t_hand, r_hand, t_mix2, t_lerp, r_lerp


def report(name: str, ratio: float, budget: float | None, times: str) -> bool:
    verdict = "" if budget is None else ("PASS" if ratio <= budget else "OVER")
    limit = "" if budget is None else f"<= {budget:<5}"
    print(f"{name:<48} {ratio:6.2f}x  {limit:8} {verdict:4}  ({times})")
    return budget is None or ratio <= budget


def settle_allocator() -> None:
    """Allocate and free one 16 MiB block, so that glibc keeps later large buffers in its heap.

    glibc's ``malloc`` hands out a large block with a fresh ``mmap`` (one page fault per 4 KiB
    on first touch) until a freed block has raised its threshold, and trims its heap when the
    free space at the top exceeds twice that threshold. What ran earlier in the process decides
    both, so without this a 3 MiB batch took either 0.15 ms or 0.43 ms per call from one run to
    the next (``mixup`` / ``lerp`` measured 0.5 or 1.2), and the page faults, not the code, set
    the ratio. One freed 16 MiB block (under glibc's 32 MiB cap) fixes the state for every
    measurement below; it changes nothing on other allocators.
    """
    block = torch.ones(16 * 2**20, dtype=torch.uint8)
    del block


def main() -> int:
    settle_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print("ratio = median over repeats of the paired ratio; times = medians per call\n")
    t_mm, t_erm, r_step, t_plain, t_erm2, r_plain = bench_training_step()
    t_terms, t_fb, t_b, r_fb, r_b = bench_gradient_terms()
    t_mix, t_hand, r_mix, t_mix2, t_lerp, r_lerp = bench_mixup()
    t_ens, t_seq, r_ens, r_rounds = bench_ensemble()
    t_auto, t_seq2, r_auto, auto_rounds = bench_ensemble(fast=False)
    members = {width: bench_members_vs_one_fit(width, epochs) for width, epochs in ((64, 60), (128, 20))}

    def ms(a: float, b: float) -> str:
        return f"{a * 1e3:.3f} ms vs {b * 1e3:.3f} ms"

    ok = [
        report("1. mixlib manifold-mixup step / by hand", r_step, 1.05, ms(t_mm, t_erm)),
        report("   mixlib manifold-mixup step / ERM step", r_plain, None, ms(t_plain, t_erm2) + "; for information"),
        report("2. gradient_terms / mixed-loss forward+backward", r_fb, 4.0, ms(t_terms, t_fb)),
        report("   gradient_terms / backward call alone", r_b, None, ms(t_terms, t_b) + "; for information"),
        report("3. mixup / its formula written by hand", r_mix, 1.25, ms(t_mix, t_hand)),
        report("   mixup / torch.lerp(x[perm], x, lam)", r_lerp, None, ms(t_mix2, t_lerp) + "; for information"),
        report("4. 16 seeds as one ensemble / 16 fit calls", r_ens, 0.25,
               f"{t_ens:.1f} s vs {t_seq:.1f} s wall clock; rounds "
               + ", ".join(f"{r:.2f}" for r in r_rounds)),
        report("   the same, plain autograd path (fast=False)", r_auto, None,
               f"{t_auto:.1f} s vs {t_seq2:.1f} s; rounds " + ", ".join(f"{r:.2f}" for r in auto_rounds)
               + "; for information"),
    ]
    for (width, epochs), budget in (((64, 60), 1.5), ((128, 20), 2.5)):
        t_k, t_one, r_k, rounds_k = members[width]
        ok.append(report(f"5. 16 members / one fit, {width}-{width}, {epochs} epochs, 1 thread", r_k, budget,
                         f"{t_k:.1f} s vs {t_one:.1f} s; rounds " + ", ".join(f"{r:.2f}" for r in rounds_k)))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 cores on the reference machine)")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
