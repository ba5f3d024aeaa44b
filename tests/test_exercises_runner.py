"""The guarantees every checker shares: time limit, hints for every failure, copies, restored state, output."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from exercise_helpers import assert_accepted, assert_rejected, specific_hints

import mixlib.exercises as ex
from mixlib.exercises import Feedback, ch01, ch02, ch03, ch05, runner

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)


def best_scale(lam):
    return math.log(lam / (1 - lam)) / (2 * lam - 1)


def mixup_batch(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def mix_hidden(model, x, layer, lam, perm):
    h = model.features(x, layer)
    return model.forward_from(lam * h + (1 - lam) * h[perm], layer)


# --- the time limit ------------------------------------------------------------------------------


def endless(lam):
    while True:
        pass


def endless_counter(lam):
    i = 0
    while i >= 0:
        i += 1
    return i


def swallows_a_few_exceptions(lam):
    for _ in range(3):
        try:
            while True:
                pass
        except BaseException:  # noqa: B036 (the point of the test: the alarm fires again)
            pass
    while True:
        pass


def catches_once_and_answers(lam):
    try:
        while True:
            pass
    except BaseException:  # noqa: B036
        return best_scale(lam)


def sleeps(lam):
    time.sleep(60)
    return best_scale(lam)


@pytest.mark.parametrize("answer", [endless, endless_counter, catches_once_and_answers, sleeps,
                                    swallows_a_few_exceptions])
def test_an_endless_function_is_stopped_with_a_hint_and_the_next_call_works(answer):
    started = time.monotonic()
    feedback = ch05.check_best_scale(answer, time_limit=0.5)
    assert time.monotonic() - started < 3
    assert not feedback and "stopped after 0.5 seconds" in feedback.message
    assert "loop that never ends" in feedback.message
    assert ch05.check_best_scale(best_scale)  # the kernel is usable afterwards


def test_the_default_time_limit_stops_an_endless_loop_within_the_limit():
    started = time.monotonic()
    feedback = ch05.check_best_scale(endless)
    elapsed = time.monotonic() - started
    assert not feedback and f"stopped after {ex.TIME_LIMIT:g} seconds" in feedback.message
    assert ex.TIME_LIMIT <= elapsed < ex.TIME_LIMIT + 2
    assert_accepted(ch05.check_best_scale, best_scale)


def test_the_time_limit_works_off_the_main_thread_too():
    results = []
    thread = threading.Thread(target=lambda: results.append(ch05.check_best_scale(endless, time_limit=0.5)))
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and not results[0] and "stopped after 0.5 seconds" in results[0].message
    thread = threading.Thread(target=lambda: results.append(ch05.check_best_scale(best_scale)))
    thread.start()
    thread.join(30)
    assert results[1]


_TRACE_SCRIPT = """
import sys
from mixlib.exercises import ch05, hint_stage, runner
runner.alarm_usable = lambda: False
runner.async_exc_usable = lambda: False

def endless(lam):
    while True:
        pass

feedback = ch05.check_best_scale(endless, time_limit=0.3)
assert not feedback and "stopped after 0.3 seconds" in feedback.message, feedback
assert sys.gettrace() is None and sys.getprofile() is None
with hint_stage(2):
    assert ch05.check_best_scale(lambda lam: 1.0).message.startswith("for lam = 0.7")
assert "you called" in ch05.check_best_scale(ch05._best_scale).message  # the call watcher beside the trace
assert sys.gettrace() is None and sys.getprofile() is None
print("ok")
"""


def test_the_last_resort_trace_function_stops_a_loop():
    """Used only where neither SIGALRM nor CPython's asynchronous exceptions exist (best effort), so it
    runs in a fresh interpreter, as it would there."""
    result = subprocess.run([sys.executable, "-c", _TRACE_SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_all_calls_together_have_a_budget(monkeypatch):
    monkeypatch.setattr(ex, "CHECK_TIME_LIMIT", 0.3)

    def slow(eligible, generator):
        time.sleep(0.01)
        return eligible[int(torch.randint(len(eligible), (1,), generator=generator))]

    # Each call takes 10 ms; the per-call limit is far above that, so that only the budget for all
    # calls together (0.3 s, raised to the per-call limit of 1 s) can stop the check, even on a busy
    # machine.
    start = time.perf_counter()
    feedback = ch03.check_sample_layer(slow, time_limit=1.0)
    assert time.perf_counter() - start < 10
    assert not feedback and "too slow" in feedback.message


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX timers")
def test_a_timer_already_running_is_left_running():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        assert ch05.check_best_scale(best_scale)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 5.0 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- every failure answered, but the stop button passes through --------------------------------------


def calls_exit(lam):
    sys.exit(3)


def calls_builtin_exit(lam):
    raise SystemExit


def stub_raises(lam):
    raise NotImplementedError


def stub_dots(lam):
    ...  # your code here


def stub_pass(lam):
    pass


def forgets_return(lam):
    best_scale(lam)


def wrong_signature(lam, alpha):
    return 1.0


def raises_deep_inside(lam):
    return torch.ones(2) @ torch.ones(3)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (calls_exit, "exit\\(\\) or sys.exit\\(\\) with code 3"),
        (calls_builtin_exit, "SystemExit"),
        (forgets_return, "returned None: did you forget the `return` statement"),
        (wrong_signature, "The checker calls it as `best_scale\\(lam\\)`"),
        (raises_deep_inside, "RuntimeError.*line \\d+ of raises_deep_inside"),
        (lambda lam: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_every_exception_becomes_a_hint(answer, hint):
    assert_rejected(ch05.check_best_scale, answer, hint)


@pytest.mark.parametrize("stub", [stub_raises, stub_dots, stub_pass])
def test_a_stub_is_not_attempted_yet(stub):
    feedback = assert_rejected(ch05.check_best_scale, stub, "Not attempted yet")
    assert feedback.message == ex.NOT_ATTEMPTED and feedback.label == "Not attempted yet"
    assert str(feedback) == "⬜ " + ex.NOT_ATTEMPTED


def test_keyboard_interrupt_passes_through_and_the_state_is_restored():
    def interrupted(lam):
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(123)
        raise KeyboardInterrupt

    rng = torch.random.get_rng_state()
    with pytest.raises(KeyboardInterrupt):
        ch05.check_best_scale(interrupted)
    assert torch.get_default_dtype() == torch.float32
    assert torch.equal(rng, torch.random.get_rng_state())
    assert runner.current_session() is None


def test_a_checker_never_crashes_on_a_strange_answer():
    class Weird(float):
        def __float__(self):
            raise ValueError("no")

    feedback = ch05.check_best_scale(lambda lam: Weird(1.0))
    assert isinstance(feedback, Feedback) and not feedback


# --- copies and mutations -----------------------------------------------------------------------------


def mixes_in_place(x, y, lam, perm):
    partner_x, partner_y = x[perm], y[perm]
    x.mul_(lam).add_((1 - lam) * partner_x)
    y.mul_(lam).add_((1 - lam) * partner_y)
    return x, y


def test_a_function_that_mutates_its_inputs_is_rejected():
    assert_rejected(ch02.check_mixup_batch, mixes_in_place, "changed its argument `x` in place")


def zeroes_then_mixes(model, x, layer, lam, perm):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return mix_hidden(model, x, layer, lam, perm)


def mixes_then_zeroes(model, x, layer, lam, perm):
    out = mix_hidden(model, x, layer, lam, perm)
    with torch.no_grad():
        model.head.weight.zero_()
    return out


@pytest.mark.parametrize("answer", [zeroes_then_mixes, mixes_then_zeroes])
def test_a_function_that_zeroes_the_model_is_rejected_and_the_reference_survives(answer):
    assert_rejected(ch03.check_mix_hidden, answer, "changed the parameters of `model`")
    assert_accepted(ch03.check_mix_hidden, mix_hidden)


def test_the_learner_gets_copies_and_shares_the_generator():
    seen = {}

    @ex.checker("f(x, g)")
    def check_f(answer):
        x, g = torch.arange(3.0), torch.Generator().manual_seed(0)
        value, problem = ex.call(answer, x, g)
        given = ex.given_arguments()
        seen.update(same_x=given[0] is x, same_g=given[1] is g)
        return problem or ex.passed("ok.")

    assert check_f(lambda x, g: float(torch.rand(1, generator=g)))
    assert seen == {"same_x": False, "same_g": True}


# --- global state ---------------------------------------------------------------------------------


def messes_with_global_state(lam):
    torch.manual_seed(99)
    torch.rand(100)
    np.random.seed(5)
    np.random.rand(10)
    random.seed(7)
    random.random()
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)
    torch.set_anomaly_enabled(True)
    return best_scale(lam)


def test_global_state_is_the_same_after_a_check_as_before():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
              torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
              torch.is_anomaly_enabled())
    assert_accepted(ch05.check_best_scale, messes_with_global_state)
    after = (torch.random.get_rng_state(), np.random.get_state()[1], random.getstate(),
             torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
             torch.is_anomaly_enabled())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def vicinal_risk(model, x, y, sigma, n_draws, generator):
    noise = torch.randn(n_draws, *x.shape, generator=generator)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model((x + sigma * noise).reshape(-1, 2)), y.repeat(n_draws)))


def test_a_check_that_draws_random_numbers_leaves_the_global_generators_alone():
    torch.manual_seed(3)
    before = torch.random.get_rng_state()

    def uses_global(*args):
        torch.rand(1000)
        return vicinal_risk(*args)

    ch01.check_vicinal_risk(uses_global)
    assert torch.equal(before, torch.random.get_rng_state())


def no_grad_everywhere(model, x, layer, lam, perm):
    torch.set_grad_enabled(False)
    return mix_hidden(model, x, layer, lam, perm)


def test_grad_mode_switched_off_by_the_learner_is_named_and_restored():
    assert_rejected(ch03.check_mix_hidden, no_grad_everywhere, "no gradient")
    assert torch.is_grad_enabled()


def float64_default(model, x, layer, lam, perm):
    torch.set_default_dtype(torch.float64)
    return mix_hidden(model, x, layer, lam, perm).double()


def test_a_float64_answer_is_compared_in_float64_and_the_default_dtype_restored():
    assert_accepted(ch03.check_mix_hidden, float64_default)
    assert torch.get_default_dtype() == torch.float32


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [np.float64, np.float32, lambda v: np.array(v), lambda v: np.array([v]), lambda v: torch.tensor(v),
     lambda v: torch.tensor([v], dtype=torch.float64), lambda v: torch.tensor(v, requires_grad=True)],
    ids=["np.float64", "np.float32", "0-d array", "1-element array", "0-d tensor", "1-element tensor",
         "tensor with grad"],
)
def test_any_real_number_type_is_accepted(convert):
    assert_accepted(ch05.check_best_scale, lambda lam: convert(best_scale(lam)))


def test_a_python_int_is_a_number():
    def constant(alpha):
        return 0 if alpha < 0 else 1

    feedback = ch05.check_best_scale(lambda lam: 1)
    assert not feedback and "you returned 1" in feedback.message
    assert "should be a number" not in ch02.check_lambda_moments(lambda a: (0, 0, constant(a))).message


@pytest.mark.parametrize(
    ("value", "hint"),
    [(True, "truth value"), ("0.5", "should be a number, but you returned str"), (1j, "returned complex"),
     (torch.ones(3), "single number"), (np.ones((2, 2)), "an array of shape \\(2, 2\\)"), (float("nan"), "nan")],
)
def test_things_that_are_not_numbers_get_a_hint(value, hint):
    assert_rejected(ch05.check_best_scale, lambda lam: value, hint)


# --- printed output ------------------------------------------------------------------------------------


def chatty(lam):
    for i in range(10_000):
        print("step", i, "of my search for the best scale")
    print("warning!", file=sys.stderr)
    return best_scale(lam)


def test_prints_are_captured_and_truncated(capsys):
    feedback = assert_accepted(ch05.check_best_scale, chatty)
    out = capsys.readouterr()
    assert "step" not in out.out and "warning!" not in out.err
    shown = [line for line in str(feedback).splitlines() if line.startswith("    | ")]
    assert len(shown) == ex.OUTPUT_LINES
    assert "truncated" in feedback.output and f"{5 * 10_001} lines" in feedback.output


def test_a_few_prints_are_shown_whole():
    def says_hello(lam):
        print("hello")
        return best_scale(lam)

    feedback = ch05.check_best_scale(says_hello)
    assert feedback and "printed 5 lines" in feedback.output and "truncated" not in feedback.output


# --- the feedback itself ---------------------------------------------------------------------------------


def test_feedback_has_a_word_label_beside_the_emoji_and_prints_itself():
    good, bad = ch05.check_best_scale(best_scale), ch05.check_best_scale(lambda lam: -1.0)
    assert str(good).startswith("✅ Correct — ") and good.label == "Correct"
    assert str(bad).startswith("❌ Not yet — ") and bad.label == "Not yet"
    assert repr(good) == str(good)

    class Printer:
        def __init__(self):
            self.out = ""

        def text(self, text):
            self.out += text

    printer = Printer()
    bad._repr_pretty_(printer, False)
    assert printer.out == str(bad)


def test_the_learners_passing_a_value_instead_of_a_function_get_a_hint():
    assert_rejected(ch05.check_best_scale, 1.5, "pass your function itself, `best_scale`")


def test_time_limit_must_be_positive():
    with pytest.raises(ValueError, match="time_limit"):
        ch05.check_best_scale(best_scale, time_limit=0)
