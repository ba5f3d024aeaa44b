"""How the checkers guide a learner: a library call that computes the answer is named, not passed, and
the hints to repeated wrong answers come in stages (a nudge, the mistake, then the formula)."""

from __future__ import annotations

import functools
import math
import re
import sys
import threading
import time

import pytest
import torch
from exercise_helpers import assert_accepted, assert_shortcut
from test_exercises_ch07 import class_dim  # the hand-written answer, built from torch only

import mixlib
import mixlib.exercises as ex
from mixlib import flatness, gradients, metrics, mixing, recipe, routes, stats
from mixlib.exercises import ch01, ch02, ch03, ch04, ch05, ch06, ch07, runner
from mixlib.flatness import class_dimension as how_many_directions
from mixlib.flatness import flattening_summary
from mixlib.gradients import mixing_constant
from mixlib.metrics import confidence_away_from_data
from mixlib.mixing import mixed_cross_entropy, mixup
from mixlib.recipe import terms_loss
from mixlib.stats import paired_difference

CHAPTERS = (ch01, ch02, ch03, ch04, ch05, ch06, ch07)
CHECKS = [getattr(m, n) for m in CHAPTERS for n in sorted(vars(m)) if n.startswith("check_")]


@pytest.fixture(autouse=True)
def _fresh_hints():
    """Every test starts, and leaves the kernel, with no wrong answers remembered."""
    ex.reset_hints()
    yield
    ex.reset_hints()


# --- library shortcuts -------------------------------------------------------------------------------

def _ce_target(logits, logits2, label, label2, lam):
    z = (lam * logits + (1 - lam) * logits2)[None]
    return torch.tensor([label]), torch.tensor([label2]), z


SHORTCUTS = [
    # chapter 1: imported by name, and through its module
    (ch01.check_far_confident_share, lambda m, x, p, d, t: confidence_away_from_data(m, x, p, d, t),
     "mixlib.metrics.confidence_away_from_data"),
    (ch01.check_far_confident_share, lambda m, x, p, d, t: metrics.confidence_away_from_data(m, x, p, d, t),
     "mixlib.metrics.confidence_away_from_data"),
    # chapter 2: by name, through a mixlib re-export, and a helper that does half of it twice
    (ch02.check_mixup_batch, lambda x, y, lam, perm: mixup(x, y, lam, perm), "mixlib.mixing.mixup"),
    (ch02.check_mixup_batch, lambda x, y, lam, perm: mixlib.mixup(x, y, lam, perm), "mixlib.mixing.mixup"),
    (ch02.check_mixup_batch, lambda x, y, lam, perm: (mixing.mix(x, lam, perm), mixing.mix(y, lam, perm)),
     "mixlib.mixing.mix"),
    (ch02.check_lambda_moments, lambda a: (0.5, 0.25 - mixing_constant(a), 0.0),
     "mixlib.gradients.mixing_constant"),
    # chapter 3
    (ch03.check_flattening_summary, lambda h, y: flattening_summary(h, y), "mixlib.flatness.flattening_summary"),
    (ch03.check_flattening_summary, lambda h, y: mixlib.flattening_summary(h, y),
     "mixlib.flatness.flattening_summary"),
    (ch03.check_mix_hidden, lambda model, x, layer, lam, perm: model.forward_mixed(x, layer, lam, perm),
     "mixlib.manifold.StagedNet.forward_mixed"),
    (ch03.check_effective_rank, lambda h, y: how_many_directions(h, y, measure="effective_rank"),
     "mixlib.flatness.class_dimension"),
    (ch03.check_mix_with_hook, lambda seq, x, layer, lam, perm: mix_at_layer(seq, x, layer, lam, perm),
     "mixlib.manifold.mix_at"),
    (ch03.check_sample_weighted_layer, lambda e, w, gen: ch03._layer_probabilities(e, w) and e[0],
     "mixlib.exercises.ch03._layer_probabilities"),
    # chapter 4: the library function passed as the answer itself, by name, through its module
    (ch04.check_mixing_constant, mixing_constant, "mixlib.gradients.mixing_constant"),
    (ch04.check_mixing_constant, lambda alpha: gradients.mixing_constant(alpha), "mixlib.gradients.mixing_constant"),
    (ch04.check_expected_loss_others, lambda e, alpha: ch04._expected_others(e, alpha),
     "mixlib.exercises.ch04._expected_others"),
    # chapter 5: a library loss, and the checker's own answer key
    (ch05.check_mixed_logit_ce, lambda z, z2, a, b, lam: float(mixed_cross_entropy(
        (lam * z + (1 - lam) * z2)[None], torch.tensor([a]), torch.tensor([b]), lam)),
     "mixlib.mixing.mixed_cross_entropy"),
    (ch05.check_mixed_logit_ce, lambda z, z2, a, b, lam: float(mixing.mixed_cross_entropy(
        (lam * z + (1 - lam) * z2)[None], torch.tensor([a]), torch.tensor([b]), lam)),
     "mixlib.mixing.mixed_cross_entropy"),
    (ch05.check_best_scale, lambda lam: ch05._best_scale(lam), "mixlib.exercises.ch05._best_scale"),
    # chapter 6: the one-call pass of exercise 3 the issue names, and the others
    (ch06.check_cross_terms_loss, lambda out, target, lam, perm: terms_loss(out, target, lam, lambda t: t[perm],
                                                                            "cross", None),
     "mixlib.recipe.terms_loss"),
    (ch06.check_expected_last_layer_loss, lambda e, alpha: float(recipe.terms_loss(-e, torch.zeros_like(e), 0.5, None,
                                                                                   "expected", None, alpha)),
     "mixlib.recipe.terms_loss"),
    (ch06.check_paired_interval, lambda a, b: (lambda s: (s.mean, s.low, s.high))(paired_difference(a.tolist(),
                                                                                                  b.tolist())),
     "mixlib.stats.paired_difference"),
    (ch06.check_paired_interval, lambda a, b: (lambda s: (s.mean, s.low, s.high))(stats.summarize((a - b).tolist())),
     "mixlib.stats.summarize"),
    (ch06.check_cross_terms_loss, lambda o, t, lam, p: ch06._cross_terms_reference(o, t, lam, p),
     "mixlib.exercises.ch06._cross_terms_reference"),
    # chapter 7: aliased, through the module, through the re-export (the example)
    (ch07.check_class_dimension, lambda h, labels: how_many_directions(h, labels), "mixlib.flatness.class_dimension"),
    (ch07.check_class_dimension, lambda h, labels: flatness.class_dimension(h, labels),
     "mixlib.flatness.class_dimension"),
    (ch07.check_class_dimension, lambda h, labels: mixlib.flatness.class_dimension(h, labels),
     "mixlib.flatness.class_dimension"),
    (ch07.check_curvature, lambda a, b, c: routes.curvature_loss(a, b, c), "mixlib.routes.curvature_loss"),
]


@pytest.mark.parametrize(("check", "answer", "name"), SHORTCUTS,
                         ids=[f"{c.__module__[-4:]}-{c.__name__}-{i}" for i, (c, _, _) in enumerate(SHORTCUTS)])
def test_a_library_shortcut_is_named_and_not_passed(check, answer, name):
    feedback = assert_shortcut(check, answer, name)
    assert not re.search(r"\d\.\d", feedback.message), feedback.message  # no value, expected or not
    if name.startswith("mixlib.exercises."):
        assert "answer key" in feedback.message
    else:
        assert "compare your result with the library's" in feedback.message


def test_the_shortcut_reply_reads_well():
    feedback = ch07.check_class_dimension(lambda h, labels: mixlib.flatness.class_dimension(h, labels))
    assert str(feedback) == (
        "❌ Not yet — you called `mixlib.flatness.class_dimension`, which computes exactly what this exercise asks "
        "for. That is the library's work, not yours: the exercise asks you to write it yourself. Do that without "
        "`class_dimension`, then compare your result with the library's.")


def test_a_shortcut_is_not_a_wrong_answer_for_the_hint_stages():
    ch04.check_mixing_constant(mixing_constant)
    ch04.check_mixing_constant(mixing_constant)
    assert ch04.check_mixing_constant(lambda alpha: 0.25).stage == 1


def mixed_logit_ce_with_one_hot(logits, logits2, label, label2, lam):
    k = len(logits)
    target = (lam * mixing.one_hot(torch.tensor([label]), k, torch.float64)
              + (1 - lam) * mixing.one_hot(torch.tensor([label2]), k, torch.float64))[0]
    return float(-(target * torch.log_softmax(lam * logits + (1 - lam) * logits2, dim=0)).sum())


def mixup_by_rows(x, y, lam, perm):  # one weight per example, or one for the batch
    def mix(t):
        w = torch.as_tensor(lam, dtype=t.dtype)
        w = w.reshape(-1, *[1] * (t.dim() - 1)) if w.dim() else w
        return w * t + (1 - w) * t[perm]

    return mix(x), mix(y)


def mix_hidden_by_hand(model, x, layer, lam, perm):  # StagedNet's own features and forward_from are fine
    h = model.features(x, layer)
    return model.forward_from(lam * h + (1 - lam) * h[perm], layer)


def mix_at_layer(seq, x, layer, lam, perm):
    with mixlib.manifold.mix_at(seq, str(layer - 1), lam, perm):
        return seq(x)


def mix_with_hook_and_library_mixing(seq, x, layer, lam, perm):  # mixing.mix is only the arithmetic: fine
    if layer == 0:  # the input: no stage to hook
        return seq(mixing.mix(x, lam, perm))
    handle = seq[layer - 1].register_forward_hook(lambda module, inputs, out: mixing.mix(out, lam, perm))
    try:
        return seq(x)
    finally:
        handle.remove()


@pytest.mark.parametrize(("check", "answer"), [
    (ch07.check_class_dimension, class_dim),
    (ch05.check_mixed_logit_ce, mixed_logit_ce_with_one_hot),
    (ch03.check_mix_hidden, mix_hidden_by_hand),
    (ch03.check_mix_with_hook, mix_with_hook_and_library_mixing),
    (ch02.check_mixup_batch, mixup_by_rows),
    (ch04.check_mixing_constant, lambda alpha: alpha / (2 * (2 * alpha + 1))),
])
def test_a_hand_written_answer_that_uses_other_library_code_passes(check, answer):
    assert_accepted(check, answer)


def test_every_exercise_declares_its_shortcuts_and_a_nudge():
    assert len(CHECKS) == 25
    nudges = set()
    for check in CHECKS:
        shortcuts = ex.shortcuts_of(check)
        assert shortcuts, check.__name__
        assert any(name.startswith("mixlib.exercises.") for name in shortcuts) or check is ch07.check_curvature \
            or check is ch07.check_class_dimension or check is ch03.check_sample_layer, check.__name__
        nudge = check.__nudge__
        assert nudge and nudge.endswith(".") and nudge not in nudges, check.__name__
        assert not re.search(r"torch\.|\w\(|\*|=|\^|/", nudge), (check.__name__, nudge)  # no code, no formula
        nudges.add(nudge)


def test_the_answer_keys_are_private():
    for module in CHAPTERS:
        public = [n for n in vars(module) if n.endswith(("_reference", "_references")) and not n.startswith("_")]
        assert not public, (module.__name__, public)


# --- the watcher and the time limits -------------------------------------------------------------------


def test_a_profile_function_already_set_is_chained_and_put_back():
    events = []

    def outer_profile(frame, event, arg):
        events.append(event)

    sys.setprofile(outer_profile)
    try:
        feedback = ch04.check_mixing_constant(lambda alpha: alpha / (2 * (2 * alpha + 1)))
        assert sys.getprofile() is outer_profile
    finally:
        sys.setprofile(None)
    assert feedback.passed and "call" in events


def calls_the_library_then_loops(alpha):
    mixing_constant(alpha)
    while True:
        pass


def test_the_alarm_still_stops_a_loop_and_a_time_out_comes_first():
    started = time.monotonic()
    feedback = ch04.check_mixing_constant(calls_the_library_then_loops, time_limit=0.3)
    assert time.monotonic() - started < 3
    assert "stopped after 0.3 seconds" in feedback.message and sys.getprofile() is None


def test_off_the_main_thread_the_watchdog_and_the_watcher_work_together():
    """After a watchdog time-out, a check that watches for shortcuts must not hang (CPython 3.11 leaves a flag
    set when a pending asynchronous exception is cleared, which makes profiled calls spin)."""
    results = []

    def work():
        results.append(ch04.check_mixing_constant(calls_the_library_then_loops, time_limit=0.3))
        results.append(ch04.check_mixing_constant(mixing_constant))
        results.append(ch04.check_mixing_constant(lambda alpha: alpha / (2 * (2 * alpha + 1))))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert "stopped after 0.3 seconds" in results[0].message
    assert results[1].shortcut == "mixlib.gradients.mixing_constant" and results[2].passed


def test_wrapped_functions_are_found_by_what_they_wrap_and_shared_wrappers_do_not_match():
    @functools.lru_cache
    def cached(x):
        return 2 * x

    @torch.no_grad()
    def no_grad_answer(x):
        return 2 * x

    @torch.no_grad()
    def other_no_grad(x):  # the same decorator's wrapper code as no_grad_answer, but not declared
        return 2 * x

    @ex.checker("double(x)", shortcuts=(cached, no_grad_answer))
    def check_double(answer):
        value, problem = ex.call(answer, 3.0)
        return problem or (ex.passed("ok.") if value == 6.0 else ex.hint("no."))

    assert check_double(lambda x: cached(x)).shortcut.endswith("cached")
    assert check_double(lambda x: no_grad_answer(x)).shortcut.endswith("no_grad_answer")
    assert check_double(lambda x: float(other_no_grad(x))).passed
    assert runner.code_objects(mixlib.manifold.mix_at) == {mixlib.manifold.mix_at.__wrapped__.__code__}


# --- staged hints ------------------------------------------------------------------------------------


def seg_arange(model, a, b, n_points):
    t = (torch.arange(n_points) / n_points)[:, None]
    with torch.no_grad():
        return float(torch.softmax(model((1 - t) * a + t * b), dim=1).max(dim=1).values.mean())


def test_three_replies_to_one_repeated_wrong_answer_segment_confidence():
    first, second, third = (ch01.check_segment_confidence(seg_arange).message for _ in range(3))
    assert first.startswith("look at which probability you average") and "A first hint" in first
    assert "linspace" not in first and "b itself" not in first
    assert "the last point must be b itself" in second and "torch.linspace" not in second
    assert second.endswith("(Still stuck after your next try? The hint will then also show how to write it.)")
    assert third.endswith("the last point must be b itself, and torch.arange(n_points) / n_points stops short of "
                          "it. Use torch.linspace(0, 1, n_points).")
    assert ch01.check_segment_confidence(seg_arange).message == third  # and so on


def test_three_replies_to_one_repeated_wrong_answer_best_scale():
    def margin(lam):
        return math.log(lam / (1 - lam))

    replies = [ch05.check_best_scale(margin) for _ in range(3)]
    assert [r.stage for r in replies] == [1, 2, 3]
    assert replies[0].message.startswith("write the loss as a function of the margin")
    assert "MARGIN" in replies[1].message and "(2 lam - 1)" not in replies[1].message
    assert replies[2].message == ("for lam = 0.7: you returned the best MARGIN; the scale is not the margin itself. "
                                  "The scale is the margin divided by (2 lam - 1).")


def test_a_hint_without_a_formula_has_two_stages():
    def summed(h, labels):
        svals = [torch.linalg.svdvals(h[labels == c]) for c in labels.unique()]
        return sum(float(s[0]) for s in svals), sum(float(s[1:].sum()) for s in svals)

    replies = [ch03.check_flattening_summary(summed).message for _ in range(3)]
    assert replies[0].startswith("look at what gets decomposed")
    assert replies[1] == replies[2] and replies[1].startswith("you summed over the classes")


def test_the_stages_are_counted_per_exercise():
    ch01.check_segment_confidence(seg_arange)
    ch01.check_segment_confidence(seg_arange)
    assert ch05.check_best_scale(lambda lam: 1.0).stage == 1  # another exercise starts at the nudge
    assert ch01.check_segment_confidence(seg_arange).stage == 3
    assert ch05.check_best_scale(lambda lam: 1.0).stage == 2


def test_a_correct_answer_starts_the_count_again():
    ch05.check_best_scale(lambda lam: 1.0)
    ch05.check_best_scale(lambda lam: 1.0)
    assert ch05.check_best_scale(lambda lam: math.log(lam / (1 - lam)) / (2 * lam - 1)).passed
    assert ch05.check_best_scale(lambda lam: 1.0).stage == 1


def test_what_is_not_a_wrong_answer_is_answered_in_full_and_not_counted():
    def raises(lam):
        raise ValueError("oops")

    def stub(lam):
        raise NotImplementedError

    def mutates(x, y, lam, perm):
        x.zero_()
        return x, y

    for answer in (raises, stub, lambda lam: None, lambda lam: "0.5", 1.5):
        feedback = ch05.check_best_scale(answer)
        assert not feedback.passed and feedback.stage == 0
    assert ch05.check_best_scale(lambda lam: 1.0).stage == 1
    assert "in place" in ch02.check_mixup_batch(mutates).message
    assert "stopped after" in ch05.check_best_scale(lambda lam: time.sleep(5), time_limit=0.2).message
    assert ch02.check_mixup_batch(lambda x, y, lam, perm: (x, y)).stage == 1


def test_strict_gives_the_whole_hint_and_does_not_count():
    with pytest.raises(ex.ExerciseFailed, match=r"stops short of it\. Use torch\.linspace\(0, 1, n_points\)\."):
        ch01.check_segment_confidence(seg_arange, strict=True)
    assert ch01.check_segment_confidence(seg_arange).stage == 1


def test_the_stage_can_be_set_and_pinned():
    ex.reset_hints(ch01.check_segment_confidence, stage=3)
    assert ch01.check_segment_confidence(seg_arange).stage == 3
    ex.reset_hints(ch01.check_segment_confidence)
    assert ch01.check_segment_confidence(seg_arange).stage == 1
    with ex.hint_stage(2):
        assert [ch05.check_best_scale(lambda lam: 1.0).stage for _ in range(3)] == [2, 2, 2]
        with ex.hint_stage(None):
            assert ch05.check_best_scale(lambda lam: 1.0).stage == 1
    with pytest.raises(ValueError):
        ex.reset_hints(stage=2)
    with pytest.raises(TypeError):
        ex.reset_hints(lambda: None)
