"""Checkers attacked on purpose: answers that try to pass without the work, to hang the check, or to leave the
kernel broken, and what each gets back.

Every test runs an attack through a real checker and asserts the reply: never ✅ for a wrong answer, a
reply in bounded time, and the kernel as it was afterwards (the notebook's own asserts keep working).
"""

from __future__ import annotations

import builtins
import math
import numbers
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch
from exercise_helpers import specific_hints
from scipy import stats

from mixlib.exercises import Feedback, ch02, ch03, ch04, ch05, ch06, ch07, runner
from mixlib.gradients import FOUR_TERM_KEYS

_specific = pytest.fixture(autouse=True)(specific_hints)
needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer") or not hasattr(signal, "pthread_sigmask"),
                                 reason="needs POSIX timers and signal masks")


def best_scale(lam):
    return math.log(lam / (1 - lam)) / (2 * lam - 1)


def assert_not_passed(feedback: Feedback) -> str:
    assert isinstance(feedback, Feedback) and not feedback.passed, str(feedback)
    text = str(feedback)
    assert "✅" not in text and "Traceback" not in text
    return feedback.message


@pytest.fixture
def pristine():
    """Whatever an attack leaves behind is undone after the test, even if the checker failed to undo it."""
    saved = [(math, "isclose", math.isclose), (torch, "allclose", torch.allclose),
             (torch.Tensor, "allclose", vars(torch.Tensor).get("allclose")), (builtins, "abs", abs),
             (builtins, "isinstance", isinstance), (ch06, "_expected_last_layer_reference",
                                                    ch06._expected_last_layer_reference),
             (Feedback, "__bool__", Feedback.__bool__)]
    code = ch05._best_scale.__code__
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGALRM)} if hasattr(signal, "SIGALRM") else {}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(signal, "pthread_sigmask") else None
    cwd, env, path, limit = os.getcwd(), dict(os.environ), list(sys.path), sys.getrecursionlimit()
    yield
    for owner, name, value in saved:
        if value is None:
            if name in vars(owner):
                delattr(owner, name)
        elif vars(owner).get(name) is not value:
            setattr(owner, name, value)
    ch05._best_scale.__code__ = code
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = path
    sys.setrecursionlimit(limit)
    while torch._C._len_torch_function_stack():
        torch._C._pop_torch_function_stack()


# --- values that answer every comparison with "equal" -----------------------------------------------


class AlwaysEqual(torch.Tensor):
    """A tensor whose torch functions report every comparison as a match."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "isclose", "eq", "__eq__", "ne", "__ne__"):
            return getattr(func, "__name__", "") not in ("ne", "__ne__")
        return super().__torch_function__(func, types, args, kwargs or {})


def zeros_like_that(t):
    return torch.zeros_like(t).as_subclass(AlwaysEqual)


@pytest.mark.parametrize(("check", "answer"), [
    (ch02.check_mixup_batch, lambda x, y, lam, perm: (zeros_like_that(x), zeros_like_that(y))),
    (ch03.check_mix_hidden, lambda model, x, layer, lam, perm: zeros_like_that(model(x))),
    (ch06.check_cross_terms_loss, lambda out, target, lam, perm: zeros_like_that(out.sum())),
    (ch07.check_curvature, lambda a, h, b: zeros_like_that(h[:, 0])),
    (ch04.check_terms_from_gradients, lambda e, e2, g, g2, lam: {k: zeros_like_that(g[0]) for k in FOUR_TERM_KEYS}),
], ids=["mixup_batch", "mix_hidden", "cross_terms_loss", "curvature", "terms_from_gradients"])
def test_a_tensor_that_says_it_equals_everything_is_read_as_the_zeros_it_holds(check, answer):
    message = assert_not_passed(check(answer))
    assert "changed" not in message  # judged as the wrong value it is, not as an attack on the checker


def test_a_torch_function_mode_left_switched_on_is_switched_off(pristine):
    from torch.overrides import TorchFunctionMode

    class EverythingClose(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in (torch.allclose, torch.equal):
                return True
            return func(*args, **(kwargs or {}))

    def answer(x, y, lam, perm):
        EverythingClose().__enter__()  # and never leaves it
        return x * 0, y * 0

    depth = torch._C._len_torch_function_stack()
    message = assert_not_passed(ch02.check_mixup_batch(answer))
    assert "a torch function mode left active" in message and "put it back" in message
    assert torch._C._len_torch_function_stack() == depth
    assert not torch.allclose(torch.zeros(2), torch.ones(2))


def test_an_object_that_pretends_to_be_a_tensor_is_not_one():
    class Impostor:
        __class__ = property(lambda self: torch.Tensor)  # isinstance(Impostor(), torch.Tensor) is True

        def __getattr__(self, name):
            return lambda *a, **k: True

    message = assert_not_passed(ch07.check_curvature(lambda a, h, b: Impostor()))
    assert "should be a tensor, but you returned Impostor" in message


def test_a_float_whose_comparisons_always_agree_is_read_as_its_value():
    class Agreeable(float):
        def __eq__(self, other):
            return True

        def __sub__(self, other):
            return 0.0

        def __rsub__(self, other):
            return 0.0

        def __float__(self):
            return 0.0

    message = assert_not_passed(ch05.check_best_scale(lambda lam: Agreeable(123.0)))
    assert "you returned 123" in message


# --- patches of the functions the checkers compare with --------------------------------------------------


def test_replacing_math_isclose_inside_an_answer_is_refused_and_undone(pristine):
    original = math.isclose

    def answer(lam):
        math.isclose = lambda *a, **k: True
        return 0.0

    message = assert_not_passed(ch05.check_best_scale(answer))
    assert "your function changed `math.isclose`" in message and "put it back" in message
    assert math.isclose is original
    assert_not_passed(ch06.check_expected_last_layer_loss(lambda e, alpha: 0.0))  # the next check is not fooled


def test_replacing_torch_allclose_is_undone_and_the_notebooks_asserts_still_work(pristine):
    def answer(x, y, lam, perm):
        torch.allclose = lambda *a, **k: True
        return x * 0, y * 0

    assert "`torch.allclose`" in assert_not_passed(ch02.check_mixup_batch(answer))
    assert not torch.allclose(torch.zeros(3), torch.ones(3))  # a notebook's own `assert torch.allclose(...)`


def test_replacing_a_tensor_method_is_undone(pristine):
    def answer(a, h, b):
        torch.Tensor.allclose = lambda self, *a, **k: True
        return h[:, 0] * 0

    assert "`torch.Tensor.allclose`" in assert_not_passed(ch07.check_curvature(answer))
    assert "allclose" not in vars(torch.Tensor) or vars(torch.Tensor)["allclose"] is not None
    assert not torch.zeros(2).allclose(torch.ones(2))


def test_replacing_the_checkers_reference_is_undone(pristine):
    original = ch06._expected_last_layer_reference

    def answer(residuals, alpha):
        ch06._expected_last_layer_reference = lambda e, a: 0.0
        return 0.0

    message = assert_not_passed(ch06.check_expected_last_layer_loss(answer))
    assert "`mixlib.exercises.ch06._expected_last_layer_reference`" in message
    assert ch06._expected_last_layer_reference is original


def test_swapping_the_code_of_the_answer_key_is_undone(pristine):
    code = ch05._best_scale.__code__

    def answer(lam):
        ch05._best_scale.__code__ = (lambda lam: 0.0).__code__
        return 0.0

    message = assert_not_passed(ch05.check_best_scale(answer))
    assert "_best_scale (its code, defaults or closure)" in message
    assert ch05._best_scale.__code__ is code


def test_making_every_feedback_true_is_undone(pristine):
    def answer(lam):
        Feedback.__bool__ = lambda self: True
        return 0.0

    feedback = ch05.check_best_scale(answer)
    assert "`mixlib.exercises.Feedback.__bool__`" in assert_not_passed(feedback)
    assert not feedback and not ch05.check_best_scale(lambda lam: 0.0)


def test_replacing_builtins_is_undone(pristine):
    def answer(lam):
        builtins.isinstance = lambda *a: True
        builtins.abs = lambda x: 0
        return 0.0

    message = assert_not_passed(ch05.check_best_scale(answer))
    assert "`builtins.isinstance`" in message and "`builtins.abs`" in message
    assert builtins.abs(-1) == 1 and not builtins.isinstance(1, str)


def test_rewriting_the_checks_own_bookkeeping_is_undone():
    def answer(lam):
        session = runner.current_session()
        session.used, session.total_limit = -1e9, 1e9
        return best_scale(lam)

    assert "`Session.used`" in assert_not_passed(ch05.check_best_scale(answer))


def test_a_replacement_made_before_the_check_is_not_used_by_it(pristine):
    replacement = lambda *a, **k: True  # noqa: E731
    math.isclose = replacement  # in a notebook cell, outside any function
    feedback = ch05.check_best_scale(lambda lam: 0.0)
    message = assert_not_passed(feedback)
    assert "`math.isclose` had been replaced in this kernel before the check; the checker used the originals" in message
    assert math.isclose is replacement  # handed back: the notebook is the learner's


def test_the_answer_keys_are_not_public():
    for module in (ch02, ch03, ch04, ch05, ch06, ch07):
        public = [n for n in dir(module) if not n.startswith("_") and "reference" in n.lower()]
        assert not public, (module.__name__, public)


# --- the timer ----------------------------------------------------------------------------------------------


def endless(lam):
    while True:
        pass


def assert_stopped(feedback: Feedback, started: float, limit: float) -> str:
    message = assert_not_passed(feedback)
    assert time.monotonic() - started < limit + 3
    assert f"stopped after {limit:g} seconds" in message
    return message


@needs_alarm
def test_blocking_the_alarm_in_a_right_answer_is_undone_and_the_next_loop_still_stops(pristine):
    def answer(lam):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        return best_scale(lam)

    feedback = ch05.check_best_scale(answer)
    assert feedback.passed and "the blocked signals (SIGALRM, the checker's timer)" in feedback.message
    assert signal.SIGALRM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    started = time.monotonic()
    assert_stopped(ch05.check_best_scale(endless, time_limit=0.5), started, 0.5)


@needs_alarm
@pytest.mark.parametrize("disable", [
    lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM}),
    lambda: signal.signal(signal.SIGALRM, signal.SIG_IGN),
    lambda: signal.signal(signal.SIGALRM, lambda *_: None),
    lambda: signal.setitimer(signal.ITIMER_REAL, 0),
], ids=["blocked", "ignored", "own-handler", "disarmed"])
def test_a_loop_that_first_disables_the_alarm_is_still_stopped(pristine, disable):
    def answer(lam):
        disable()
        while True:
            pass

    started = time.monotonic()
    message = assert_stopped(ch05.check_best_scale(answer, time_limit=0.5), started, 0.5)
    assert "the checker's timer" in message and "put it back" in message
    assert ch05.check_best_scale(best_scale)


@needs_alarm
def test_an_alarm_blocked_before_the_check_does_not_hang_it(pristine):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # in a notebook cell, outside any function
    started = time.monotonic()
    assert_stopped(ch05.check_best_scale(endless, time_limit=0.5), started, 0.5)
    assert signal.SIGALRM in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the notebook's own setting, kept


def test_one_long_operation_is_reported_with_its_real_duration():
    n = 5_000_000
    started = time.perf_counter()
    sum(range(n))  # one call into C: no alarm interrupts it
    n = int(n * 4 / max(time.perf_counter() - started, 1e-3))  # about 4 s (over 1 s even if the load drops)

    def answer(lam):
        sum(range(n))
        return best_scale(lam)

    message = assert_not_passed(ch05.check_best_scale(answer, time_limit=0.1))
    assert "one long operation took that long" in message and "past the 0.1-second limit" in message
    ran = float(message.split("your function ran for ")[1].split(" seconds")[0])
    assert ran >= 0.6


# --- code of the learner's that runs while the checker reads the answer -------------------------------------


class EndlessFloat:
    def __float__(self):
        while True:
            pass


class ExitingFloat:
    def __float__(self):
        raise SystemExit(0)


numbers.Real.register(EndlessFloat)
numbers.Real.register(ExitingFloat)


def test_a_number_whose_conversion_never_ends_is_stopped():
    started = time.monotonic()
    assert_stopped(ch05.check_best_scale(lambda lam: EndlessFloat(), time_limit=0.5), started, 0.5)


def test_a_number_whose_conversion_exits_gets_a_verdict():
    message = assert_not_passed(ch05.check_best_scale(lambda lam: ExitingFloat()))
    assert "could not read what your function returned, an object of type ExitingFloat" in message
    assert "raised SystemExit" in message


def test_an_object_that_is_not_a_number_is_never_converted():
    class Trap:
        def __float__(self):
            raise SystemExit(1)

    assert "should be a number, but you returned Trap" in assert_not_passed(ch05.check_best_scale(lambda lam: Trap()))


def test_a_tensor_whose_torch_function_never_ends_is_read_without_it():
    class Endless(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            while True:
                pass

    started = time.monotonic()
    message = assert_not_passed(ch05.check_best_scale(lambda lam: torch.tensor(2.0).as_subclass(Endless)))
    assert time.monotonic() - started < 5 and "you returned 2" in message


def test_an_exception_whose_message_never_ends_still_gets_a_hint():
    class Endless(Exception):
        def __str__(self):
            while True:
                pass

    def answer(lam):
        raise Endless

    started = time.monotonic()
    message = assert_not_passed(ch05.check_best_scale(answer))
    assert time.monotonic() - started < 10 and "your function raised Endless" in message


def test_an_answer_object_with_booby_trapped_attributes_is_still_called():
    class Answer:
        def __getattr__(self, name):
            raise SystemExit(f"looked up {name}")

        def __call__(self, lam):
            return best_scale(lam)

    assert ch05.check_best_scale(Answer()).passed


def test_a_hook_that_exits_while_the_checker_differentiates_gets_a_verdict():
    def answer(out, target, lam, perm):
        e = target - out
        loss = (lam * (1 - lam) * (e * e[perm]).sum(1)).mean()
        loss.register_hook(lambda grad: sys.exit(4))
        return loss

    assert "could not make sense of what your function returned (SystemExit" in assert_not_passed(
        ch06.check_cross_terms_loss(answer))


# --- global state a right answer changes -----------------------------------------------------------------------


def test_global_settings_changed_by_a_right_answer_are_put_back_and_named(pristine, tmp_path):
    def settings():
        return (signal.getsignal(signal.SIGINT), sys.getrecursionlimit(), os.getcwd(),
                torch.get_float32_matmul_precision(), np.geterr(), np.get_printoptions()["precision"],
                torch._tensor_str.PRINT_OPTS.precision, torch.backends.mkldnn.enabled, list(sys.path),
                torch.get_default_dtype(), torch.is_grad_enabled())

    before = settings()

    def answer(lam):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop button would stop working
        sys.setrecursionlimit(sys.getrecursionlimit() + 5000)
        os.chdir(tmp_path)
        torch.set_float32_matmul_precision("medium")
        np.seterr(all="ignore")
        np.set_printoptions(precision=2)
        torch.set_printoptions(precision=1)
        torch.backends.mkldnn.enabled = not torch.backends.mkldnn.enabled
        os.environ["MIXLIB_ATTACK"] = "1"
        sys.path.append(str(tmp_path))
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return best_scale(lam)

    feedback = ch05.check_best_scale(answer)
    assert feedback.passed
    for name in ("the handler of SIGINT (the notebook's stop button)", "the recursion limit", "the working directory",
                 "torch's float32 matmul precision", "NumPy's floating-point error handling", "NumPy's print options",
                 "torch's print options", "torch's backend flags", "the environment variables",
                 "the module search path", "torch's default dtype", "grad mode"):
        assert name in feedback.message, name
    assert settings() == before and "MIXLIB_ATTACK" not in os.environ


def test_a_trace_function_left_behind_is_removed():
    previous = sys.gettrace()

    def answer(lam):
        sys.settrace(lambda *a: None)
        return best_scale(lam)

    feedback = ch05.check_best_scale(answer)
    assert feedback.passed and "a trace function (sys.settrace)" in feedback.message
    assert sys.gettrace() is previous


# --- autograd ------------------------------------------------------------------------------------------------


def cross_terms(out, target, lam, perm):
    e = target - out
    return (lam * (1 - lam) * (e * e[perm]).sum(1)).mean()


def test_backward_inside_the_answer_is_named():
    def answer(out, target, lam, perm):
        loss = cross_terms(out, target, lam, perm)
        loss.backward()  # a training-loop habit
        return loss

    message = assert_not_passed(ch06.check_cross_terms_loss(answer))
    assert "backward through the graph a second time" in message
    assert "Your function did run .backward() through its arguments" in message
    assert "do not call .backward()" in message


def test_an_in_place_change_of_a_saved_tensor_is_named():
    def answer(out, target, lam, perm):
        e = target - out
        loss = (lam * (1 - lam) * (e * e[perm]).sum(1)).mean()
        e.mul_(1.0)  # e was saved for the backward pass
        return loss

    message = assert_not_passed(ch06.check_cross_terms_loss(answer))
    assert "modified by an inplace operation" in message and "Write that step out of place" in message


def test_an_in_place_error_inside_the_answer_is_named():
    def answer(out, target, lam, perm):
        e = target - out
        loss = (e * e[perm]).sum()
        e.add_(1.0)
        loss.backward()
        return cross_terms(out, target, lam, perm)

    message = assert_not_passed(ch06.check_cross_terms_loss(answer))
    assert "your function raised RuntimeError" in message and "in-place operation" in message


# --- precision and estimates -----------------------------------------------------------------------------------


def test_a_float32_detour_on_float64_inputs_is_named():
    def answer(a, b):
        d = a.float() - b.float()
        half = float(stats.t.ppf(0.975, len(d) - 1)) * float(d.std()) / math.sqrt(len(d))
        mean = float(d.mean())
        return mean, mean - half, mean + half

    message = assert_not_passed(ch06.check_paired_interval(answer))
    assert "off by float32 rounding only" in message


@pytest.mark.parametrize(("check", "right"), [
    (ch02.check_lambda_moments, lambda alpha, k: (0.5, k / (4 * (2 * alpha + 1)), 0.25 - 1 / (4 * (2 * alpha + 1)))),
    (ch06.check_expected_last_layer_loss, lambda e, alpha, k: k * ch06._expected_last_layer_reference(e, alpha)),
], ids=["lambda_moments", "expected_last_layer_loss"])
def test_a_near_miss_gets_the_same_reply_as_a_far_one(check, right):
    """No reply depends on how close a wrong value is to the right one: bisecting on the replies finds nothing."""
    near = assert_not_passed(check(lambda *a: right(*a, 1.01)))
    far = assert_not_passed(check(lambda *a: right(*a, 1.5)))
    assert "close" not in near
    strip = lambda text: " ".join(w for w in text.split() if not any(c.isdigit() for c in w))  # noqa: E731
    assert strip(near) == strip(far)


def test_a_seeded_numpy_estimate_is_called_an_estimate():
    def answer(residuals, alpha):
        rng = np.random.default_rng(0)
        lam = torch.from_numpy(rng.beta(alpha, alpha, size=(2000, 1, 1)))
        j = torch.from_numpy(rng.integers(0, len(residuals), size=(2000, len(residuals))))
        mixed = lam * residuals + (1 - lam) * residuals[j]
        return float(0.5 * mixed.pow(2).sum(-1).mean())

    message = assert_not_passed(ch06.check_expected_last_layer_loss(answer))
    assert "draws random numbers (NumPy's default_rng)" in message and "Monte Carlo estimate" in message


# --- the checker's own machinery ---------------------------------------------------------------------------------


def test_switching_off_the_checkers_own_guard_is_undone(pristine):
    saved = (runner.Guard.restore, vars(runner.Guard)["_restore_space"], runner.State.restore.__code__, runner._same,
             runner.put_own_back.__defaults__)

    def answer(lam):  # every piece of the guard that would notice, then the patch
        runner.Guard.restore = lambda self: []
        runner.Guard._restore_space = staticmethod(lambda *a: [])
        runner.State.restore.__code__ = (lambda self: []).__code__
        runner._same = lambda a, b: True
        runner.put_own_back.__defaults__ = (None, None, None)
        math.isclose = lambda *a, **k: True
        return 0.0

    try:
        message = assert_not_passed(ch05.check_best_scale(answer))
        assert message.startswith("your function changed `mixlib.exercises.runner.") and " more:" in message
        assert (runner.Guard.restore, vars(runner.Guard)["_restore_space"], runner.State.restore.__code__,
                runner._same, runner.put_own_back.__defaults__) == saved
        assert not math.isclose(0.0, 1.0)
    finally:
        (runner.Guard.restore, runner.Guard._restore_space, runner.State.restore.__code__, runner._same,
         runner.put_own_back.__defaults__) = saved


def test_a_patch_made_by_a_hook_while_the_checker_differentiates_is_undone(pristine):
    def answer(out, target, lam, perm):
        loss = cross_terms(out, target, lam, perm)  # right: the checker goes on to differentiate it

        def patch(grad):
            torch.allclose = lambda *a, **k: True
            return grad

        loss.register_hook(patch)
        return loss

    message = assert_not_passed(ch06.check_cross_terms_loss(answer))
    assert "`torch.allclose`" in message
    assert not torch.allclose(torch.zeros(2), torch.ones(2))
