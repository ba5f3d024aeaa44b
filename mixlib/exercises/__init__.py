"""Checkers for the exercises at the end of each chapter.

A checker takes the learner's function, runs it on cases whose answers it knows and
returns a :class:`Feedback`: "✅ Correct — ..." when everything matches, otherwise
"❌ Not yet — ..." with a hint that names the likely mistake. Pass ``strict=True`` to raise
:class:`ExerciseFailed` instead of returning a failed feedback (the book's own solutions do,
so a wrong solution breaks the build). One module per chapter:
``from mixlib.exercises import ch01``.

Every checker is built with :func:`checker` and calls the learner's function only through
:func:`call`, which gives these guarantees:

- **A time limit.** Each call of the learner's function may run for ``time_limit`` seconds
  (:data:`TIME_LIMIT` by default; every checker takes ``time_limit=``), and all the calls of one
  check together for :data:`CHECK_TIME_LIMIT`. On the main thread of the main interpreter on
  POSIX (a Jupyter kernel, a script, pytest) a ``SIGALRM`` timer raises a private exception
  inside the learner's code, which stops even ``while True: pass``; it fires again every
  50 ms, so a function that catches it once (a bare ``except:``) is stopped again. Elsewhere
  (a worker thread, a subinterpreter, Windows) a watchdog thread raises the same exception in
  the learner's thread (CPython's ``PyThreadState_SetAsyncExc``); on other Pythons a trace
  function checks the clock at every step of the learner's code (slower, and best effort).
  Either way, one long operation in C (a huge matrix product) is interrupted only when it
  returns, and a loop that
  swallows every exception forever (``while True: try: ... except: pass``) cannot be stopped
  from inside the process, not even by the notebook's stop button. After a time-out the
  kernel is usable as before.
- **Every failure answered.** Any exception, ``SystemExit`` included, becomes a failing
  feedback naming the exception and the line of the learner's code it came from. Only a
  ``KeyboardInterrupt`` (the notebook's stop button) passes through. A function that still
  raises ``NotImplementedError``, or whose body is still only ``...`` or ``pass`` (the stub),
  gets "Not attempted yet: ..." (a failing feedback; ``strict=True`` raises).
- **References first, copies to the learner.** Checkers compute their reference answers before
  they call the learner's function, and :func:`call` hands it deep copies of tensors, arrays,
  models and containers (``torch.Generator`` arguments are passed as they are: drawing from
  them is the point). A function that changes an argument in place, or a model's parameters,
  is rejected with a hint, and cannot corrupt the reference.
- **Global state restored.** After each call: the default dtype, the default device, grad mode,
  anomaly detection, deterministic-algorithm mode, the number of threads and the warning
  filters. After the whole check, also the random number generators (torch on the CPU and,
  if initialised, on CUDA; NumPy's global one; Python's ``random``). A check leaves no trace.
- **Numbers are numbers.** Wherever a number is asked, a Python ``int`` or ``float``, a NumPy
  scalar, a one-element array or tensor (0-d included, on any device, of any real dtype) is
  accepted; results are compared on the CPU in float64.
- **Quiet.** What the learner's function prints (stdout and stderr) is captured; the
  feedback shows its first few lines and says how many were left out.
- **Honest hints.** A hint never reveals the expected value of the quantity asked for.
"""

from __future__ import annotations

import contextlib
import copy
import dis
import functools
import io
import math
import numbers
import random
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CHECK_TIME_LIMIT",
    "TIME_LIMIT",
    "ExerciseFailed",
    "Feedback",
    "as_float",
    "as_tensor",
    "call",
    "check_callable",
    "checker",
    "diagnose",
    "finish",
    "float_note",
    "given_arguments",
    "hint",
    "passed",
]

#: Seconds one call of the learner's function may run (generous for two slow CPU cores).
TIME_LIMIT = 10.0
#: Seconds all the calls of one check may run together.
CHECK_TIME_LIMIT = 60.0
#: How many lines of the learner's printed output a feedback shows, and how long each may be.
OUTPUT_LINES = 5
_OUTPUT_WIDTH = 160
_OUTPUT_KEEP = 20_000  # characters kept in memory; the rest is only counted
_REPEAT = 0.05  # seconds between repeated alarms once the limit has passed


class ExerciseFailed(AssertionError):
    """Raised by a checker called with ``strict=True`` when the answer is wrong."""


class _TimeUp(BaseException):
    """Raised inside the learner's code by the checker's own timer.

    A ``BaseException`` so that ``except Exception`` in the learner's code does not swallow
    it, and not a ``KeyboardInterrupt``, so that it is never mistaken for the stop button.
    """


NOT_ATTEMPTED = ("Not attempted yet: fill in the function in this cell (replace `raise NotImplementedError` "
                 "with your code), then run the cell again.")


@dataclass(frozen=True)
class Feedback:
    """The verdict of a checker: ``passed``, a message for the learner, and what their function printed.

    It is truthy exactly when the answer passed, so ``assert check(...)`` works. Its text
    starts with an emoji and a word label ("✅ Correct —", "❌ Not yet —", or "❌ Not attempted
    yet:"), and a notebook shows it when it is a cell's last expression.
    """

    passed: bool
    message: str
    output: str = ""
    attempted: bool = True

    def __bool__(self) -> bool:
        return self.passed

    @property
    def label(self) -> str:
        """The word label shown beside the emoji."""
        if self.passed:
            return "Correct"
        return "Not yet" if self.attempted else "Not attempted yet"

    def __str__(self) -> str:
        if self.passed:
            text = f"✅ Correct — {self.message}"
        elif not self.attempted:
            text = f"❌ {self.message}"
        else:
            text = f"❌ Not yet — {self.message}"
        return f"{text}\n{self.output}" if self.output else text

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display
        printer.text(str(self))


def passed(message: str) -> Feedback:
    """A passing verdict."""
    return Feedback(True, message)


def hint(message: str) -> Feedback:
    """A failing verdict carrying a hint."""
    return Feedback(False, message)


def _not_attempted() -> Feedback:
    return Feedback(False, NOT_ATTEMPTED, attempted=False)


def finish(feedback: Feedback, strict: bool) -> Feedback:
    """Return ``feedback``, or raise :class:`ExerciseFailed` if it failed and ``strict`` is set."""
    if strict and not feedback.passed:
        raise ExerciseFailed(str(feedback))
    return feedback


def check_callable(answer: object, name: str) -> Feedback | None:
    """A failing verdict if ``answer`` is not a function, else ``None``."""
    if not callable(answer):
        return hint(f"pass your function itself, `{name}`, not {type(answer).__name__} "
                    f"(write `check({name})`, not `check({name}(...))`).")
    return None


# ---------------------------------------------------------------------------------------------
# Global state
# ---------------------------------------------------------------------------------------------


class _State:
    """A snapshot of the global state a learner's function could change; ``restore`` puts it back."""

    def __init__(self, rng: bool) -> None:
        self.dtype = torch.get_default_dtype()
        self.grad = torch.is_grad_enabled()
        self.anomaly = torch.is_anomaly_enabled()
        self.deterministic = (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled())
        self.threads = torch.get_num_threads()
        self.device = torch.get_default_device() if hasattr(torch, "get_default_device") else None
        self.rng = rng
        if rng:
            self.torch_rng = torch.random.get_rng_state()
            self.cuda_rng = (torch.cuda.get_rng_state_all()
                             if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
            self.numpy_rng = np.random.get_state()
            self.python_rng = random.getstate()

    def restore(self) -> None:
        if torch.get_default_dtype() != self.dtype:
            torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        if torch.is_anomaly_enabled() != self.anomaly:
            torch.set_anomaly_enabled(self.anomaly)
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != self.deterministic:
            torch.use_deterministic_algorithms(self.deterministic[0], warn_only=self.deterministic[1])
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.device is not None and torch.get_default_device() != self.device:
            torch.set_default_device(None if self.device == torch.device("cpu") else self.device)
        if self.rng:
            torch.random.set_rng_state(self.torch_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state_all(self.cuda_rng)
            np.random.set_state(self.numpy_rng)
            random.setstate(self.python_rng)


# ---------------------------------------------------------------------------------------------
# Captured output
# ---------------------------------------------------------------------------------------------


class _Capture(io.TextIOBase):
    """A text stream that keeps the start of what is written to it and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[str] = []
        self.kept_chars = 0
        self.chars = 0
        self.line_breaks = 0
        self.ends_with_newline = True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        if not text:
            return 0
        self.chars += len(text)
        self.line_breaks += text.count("\n")
        self.ends_with_newline = text.endswith("\n")
        if self.kept_chars < _OUTPUT_KEEP:
            piece = text[: _OUTPUT_KEEP - self.kept_chars]
            self.kept.append(piece)
            self.kept_chars += len(piece)
        return len(text)

    def summary(self) -> str:
        """A few lines of what was printed, and how much was left out."""
        if self.chars == 0:
            return ""
        n_lines = self.line_breaks + (0 if self.ends_with_newline else 1)
        lines = "".join(self.kept).splitlines()[:OUTPUT_LINES]
        shown = [line if len(line) <= _OUTPUT_WIDTH else line[:_OUTPUT_WIDTH] + " …" for line in lines]
        body = "\n".join("    | " + line for line in shown)
        if n_lines <= len(shown) and all(len(line) <= _OUTPUT_WIDTH for line in lines):
            return f"Your function printed {_count(n_lines, 'line')} while the checker ran it:\n{body}"
        return (f"Your function printed {_count(n_lines, 'line')} while the checker ran it; only the first "
                f"{len(shown)} are shown (the output was truncated):\n{body}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------------
# The check session and the time limit
# ---------------------------------------------------------------------------------------------


class _Session:
    """What one run of a checker shares between its calls of the learner's function."""

    def __init__(self, name: str, arg_names: tuple[str, ...], signature: str, time_limit: float,
                 total_limit: float) -> None:
        self.name = name
        self.arg_names = arg_names
        self.signature = signature
        self.time_limit = time_limit
        self.total_limit = total_limit
        self.used = 0.0
        self.calls = 0
        self.output = _Capture()
        self.given: tuple[Any, ...] = ()
        self.given_kwargs: dict[str, Any] = {}


_session: _Session | None = None


@contextlib.contextmanager
def _checking(name: str, arg_names: tuple[str, ...], signature: str, time_limit: float | None,
              ) -> Iterator[_Session]:
    global _session
    outer = _session
    limit = TIME_LIMIT if time_limit is None else float(time_limit)
    if not limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    session = _Session(name, arg_names, signature, limit, max(CHECK_TIME_LIMIT, limit))
    state = _State(rng=True)
    _session = session
    try:
        yield session
    finally:
        _session = outer
        state.restore()


def _alarm_usable() -> bool:
    return (hasattr(signal, "setitimer") and sys.platform != "win32"
            and threading.current_thread() is threading.main_thread())


def _run_with_alarm(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a ``SIGALRM`` timer; ``state["fired"]`` tells whether the timer went off."""
    state["armed"] = False

    def on_alarm(signum: int, frame: Any) -> None:
        # Ignore an alarm that lands in this function's own prologue or epilogue.
        if state["armed"] and (frame is None or frame.f_code is not _ALARM_CODE):
            state["fired"] = True
            raise _TimeUp

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main interpreter
        return _run_with_watchdog(fn, args, kwargs, limit, state)
    started = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, limit, _REPEAT)
    try:
        state["armed"] = True
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        state["armed"] = False
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if old_delay > 0:  # somebody else's timer was running: let it go on
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 1e-3), old_interval)


_ALARM_CODE = _run_with_alarm.__code__


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def _async_exc_usable() -> bool:
    try:
        import ctypes

        return sys.implementation.name == "cpython" and hasattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc")
    except (ImportError, AttributeError):
        return False


def _run_with_watchdog(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` while a watchdog thread raises the time-out in this thread at the deadline (CPython)."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(limit):
            return
        while True:
            with lock:
                if done.is_set():
                    return
                state["fired"] = True
                _set_async_exc(thread_id, _TimeUp)
            if done.wait(_REPEAT):
                return

    threading.Thread(target=watchdog, name="exercise-time-limit", daemon=True).start()
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        while True:  # stop the watchdog and drop a time-out it may have left pending
            try:
                with lock:
                    done.set()
                    _set_async_exc(thread_id, None)
                break
            except _TimeUp:
                continue


def _run_with_trace(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn`` with a trace function that checks the clock at each opcode (the last resort)."""
    deadline = time.monotonic() + limit

    def local(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            state["fired"] = True
            raise _TimeUp
        return local

    def start(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local(frame, event, arg)

    previous = sys.gettrace()
    sys.settrace(start)
    try:
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            return None
    finally:
        sys.settrace(previous)


def _run_limited(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float, state: dict) -> Any:
    """Run ``fn(*args, **kwargs)`` for at most ``limit`` seconds; ``state["fired"]`` says if it was stopped."""
    state["fired"] = False
    try:
        if _alarm_usable():
            return _run_with_alarm(fn, args, kwargs, limit, state)
        if _async_exc_usable():
            return _run_with_watchdog(fn, args, kwargs, limit, state)
        return _run_with_trace(fn, args, kwargs, limit, state)
    except _TimeUp:  # raised in a runner's own epilogue, after the function returned
        state["fired"] = True
        return None


# ---------------------------------------------------------------------------------------------
# Copies of the arguments, and changes made to them
# ---------------------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A deep copy for the learner: tensors, arrays, models and containers copied, generators shared."""
    if isinstance(value, torch.Generator):
        return value
    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        return out.requires_grad_(value.requires_grad) if out.is_floating_point() or out.is_complex() else out
    if isinstance(value, (nn.Module, np.ndarray)):
        return copy.deepcopy(value)
    if type(value) in (tuple, list):
        return type(value)(_copy(v) for v in value)
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same_tensor(a: torch.Tensor, b: object) -> bool:
    if not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    a64, b64 = a.detach().cpu(), b.detach().cpu()
    if a64.is_floating_point() or b64.is_floating_point():
        a64, b64 = a64.double(), b64.double()
    return bool(torch.equal(a64, b64))


def _changed(original: Any, given: Any) -> str | None:
    """``None`` if the learner's copy still equals the original, else what kind of thing changed."""
    if isinstance(original, torch.Tensor):
        return None if _same_tensor(original, given) else "tensor"
    if isinstance(original, np.ndarray):
        same = (isinstance(given, np.ndarray) and given.shape == original.shape
                and bool(np.array_equal(original, given)))
        return None if same else "tensor"
    if isinstance(original, nn.Module):
        before, after = original.state_dict(), given.state_dict() if isinstance(given, nn.Module) else {}
        if before.keys() != after.keys() or not all(_same_tensor(before[k], after[k]) for k in before):
            return "model"
        return None
    if type(original) in (tuple, list):
        if type(given) is not type(original) or len(given) != len(original):
            return "container"
        return next((c for c in map(_changed, original, given) if c is not None), None)
    if type(original) is dict:
        if type(given) is not dict or given.keys() != original.keys():
            return "container"
        return next((c for k in original if (c := _changed(original[k], given[k])) is not None), None)
    return None


def _mutation_hint(name: str, kind: str) -> Feedback:
    if kind == "model":
        return hint(f"your function changed the parameters of `{name}` (for example by zeroing its weights, "
                    "writing into them with .copy_() or .fill_(), or taking an optimiser step). Use the model "
                    "as it is given: evaluate it, don't modify it.")
    return hint(f"your function changed its argument `{name}` in place (with +=, *=, an assignment such as "
                f"{name}[i] = ..., or a method ending in an underscore such as .add_() or .clamp_()). The "
                f"caller still needs `{name}` as it was: build new tensors instead ({name} = {name} * 2 rather "
                f"than {name} *= 2).")


# ---------------------------------------------------------------------------------------------
# Calling the learner's function
# ---------------------------------------------------------------------------------------------


def _where(exc: BaseException, answer: Callable[..., Any]) -> str:
    """' (line N of f)' for the deepest frame of the learner's own code, if there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    code = getattr(answer, "__code__", None)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename]
    own = __file__.removesuffix("c")
    chosen = mine[-1] if mine else next((f for f in reversed(frames) if f.filename != own), None)
    if chosen is None:
        return ""
    return f" (line {chosen.lineno} of {chosen.name})"


def _exception_hint(exc: BaseException, answer: Callable[..., Any], session: _Session) -> Feedback:
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else f" with code {exc.code!r}"
        return hint(f"your function called exit() or sys.exit(){code}{_where(exc, answer)}, which raises "
                    "SystemExit. A function that a checker calls must hand back its result with `return`; "
                    "it cannot end the program.")
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + " …"
    message = f"your function raised {type(exc).__name__}" + (f": {text}" if text else "") + _where(exc, answer)
    if not message.endswith((".", "…")):
        message += "."
    message += " Fix that first, then run the checker again."
    if isinstance(exc, TypeError) and re.search(r"positional argument|keyword argument|required argument",
                                                 text):
        message += f" The checker calls it as `{session.signature}`."
    return hint(message)


def _timeout_hint(session: _Session, limit: float, by_total: bool) -> Feedback:
    if by_total:
        return hint(f"your function is too slow: the checker called it {_count(session.calls, 'time')}, and "
                    f"together the calls ran past the {session.total_limit:g} seconds a check may take. Look "
                    "for a Python loop that a tensor operation could replace, or for work repeated on every "
                    "call.")
    return hint(f"your function was stopped after {limit:g} seconds without returning (call "
                f"{session.calls} of this check). Look for a loop that never ends: a `while` loop whose "
                "condition never turns false, or a counter that is never updated. The kernel is fine: fix "
                "the function, run its cell again, then run the checker again.")


def call(answer: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Feedback | None]:
    """Call the learner's function on copies of ``args``; return ``(value, None)`` or ``(None, hint)``.

    The call runs under the check's time limit, with its printed output captured and the global
    state (see the module's docstring) restored afterwards. Every exception except
    ``KeyboardInterrupt`` becomes a hint; so does a change the function made to its arguments.
    """
    session = _session
    if session is None:  # called outside a checker: give it a session of its own
        name = getattr(answer, "__name__", "function")
        with _checking(name, (), f"{name}(...)", None):
            return call(answer, *args, **kwargs)
    given, given_kwargs = _copy(args), _copy(kwargs)
    session.given, session.given_kwargs = given, given_kwargs
    session.calls += 1
    remaining = session.total_limit - session.used
    limit = min(session.time_limit, remaining)
    if limit <= 0:
        return None, _timeout_hint(session, session.time_limit, by_total=True)
    state = _State(rng=False)
    timer: dict[str, bool] = {"fired": False}
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(session.output), contextlib.redirect_stderr(session.output), \
                warnings.catch_warnings():
            value = _run_limited(answer, given, given_kwargs, limit, timer)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the learner's bug, SystemExit included: a hint, not a crash
        if timer["fired"]:  # the function caught the time-out and raised something else
            return None, _timeout_hint(session, limit, by_total=limit < session.time_limit)
        if isinstance(exc, NotImplementedError):
            return None, _not_attempted()
        return None, _exception_hint(exc, answer, session)
    finally:
        session.used += time.monotonic() - started
        state.restore()
    if timer["fired"]:
        return None, _timeout_hint(session, limit, by_total=limit < session.time_limit)
    names = session.arg_names
    for i, (original, copied) in enumerate(zip(args, given, strict=True)):
        kind = _changed(original, copied)
        if kind is not None:
            return None, _mutation_hint(names[i] if i < len(names) else f"argument {i + 1}", kind)
    for key, original in kwargs.items():
        kind = _changed(original, given_kwargs[key])
        if kind is not None:
            return None, _mutation_hint(key, kind)
    if value is None and _is_stub(answer):
        return None, _not_attempted()
    return value, None


_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE"}


def _is_stub(answer: Callable[..., Any]) -> bool:
    """Whether ``answer`` is an empty stub: a body of ``...``, ``pass`` or a docstring only."""
    code = getattr(answer, "__code__", None)
    if code is None:
        return False
    try:
        return all(ins.opname in _STUB_OPS for ins in dis.get_instructions(code))
    except Exception:  # an unusual code object: not a stub we recognise
        return False


def given_arguments() -> tuple[Any, ...]:
    """The copies of the positional arguments that the last :func:`call` handed to the learner's function."""
    if _session is None:
        raise RuntimeError("given_arguments() is only meaningful inside a checker")
    return _session.given


# ---------------------------------------------------------------------------------------------
# The decorator every checker uses
# ---------------------------------------------------------------------------------------------


def checker(signature: str) -> Callable[[Callable[[Callable[..., Any]], Feedback]], Callable[..., Feedback]]:
    """Turn ``body(answer) -> Feedback`` into ``check(answer, strict=False, *, time_limit=None)``.

    ``signature`` is how the checker calls the learner's function, e.g.
    ``"mixup_batch(x, y, lam, perm)"``: its name is used in hints and its argument names
    name an argument the function changed. The wrapper checks that ``answer`` is callable,
    runs ``body`` in a session (time limits, captured output, global state restored), turns a
    crash of the checker itself on a strange answer into a hint, attaches the captured output
    and applies ``strict``.
    """
    match = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", signature)
    if match is None:
        raise ValueError(f"signature must look like 'name(a, b)', got {signature!r}")
    name = match.group(1)
    arg_names = tuple(a.strip() for a in match.group(2).split(",") if a.strip())

    def decorate(body: Callable[[Callable[..., Any]], Feedback]) -> Callable[..., Feedback]:
        @functools.wraps(body)
        def check(answer: Callable[..., Any], strict: bool = False, *, time_limit: float | None = None) -> Feedback:
            problem = check_callable(answer, name)
            if problem is not None:
                return finish(problem, strict)
            with _checking(name, arg_names, signature, time_limit) as session:
                try:
                    feedback = body(answer)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # the checker could not digest an unusual answer
                    feedback = hint(f"the checker could not make sense of what your function returned "
                                    f"({type(exc).__name__}: {exc}). Check that it returns what the exercise "
                                    f"asks for, in the form `{signature}` describes.")
            output = session.output.summary()
            if output:
                feedback = replace(feedback, output=output)
            return finish(feedback, strict)

        check.__signature_of_answer__ = signature  # type: ignore[attr-defined]
        return check

    return decorate


# ---------------------------------------------------------------------------------------------
# Reading the learner's results
# ---------------------------------------------------------------------------------------------


def as_float(value: Any, what: str) -> tuple[float | None, Feedback | None]:
    """Convert a learner's number to ``float``, or explain why not.

    Accepts Python and NumPy real numbers, and one-element tensors and arrays (0-d included,
    on any device, of any real dtype).
    """
    if value is None:
        return None, hint(f"{what} should be a number, but your function returned None: did you forget "
                          "the `return` statement?")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        shape = tuple(value.shape)
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            kind = "a tensor" if isinstance(value, torch.Tensor) else "an array"
            return None, hint(f"{what} should be a single number, but you returned {kind} of shape {shape}. "
                              "Did you forget to average (or to sum) over it?")
        is_complex = value.is_complex() if isinstance(value, torch.Tensor) else np.iscomplexobj(value)
        if is_complex:
            return None, hint(f"{what} should be a real number, but yours is complex.")
        value = value.detach().cpu().reshape(()).item() if isinstance(value, torch.Tensor) else value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        return None, hint(f"{what} should be a number, but you returned the truth value {value}.")
    if not isinstance(value, numbers.Real):
        return None, hint(f"{what} should be a number, but you returned {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value):
        return None, hint(f"{what} came out as {value}; look for a division by zero or log(0).")
    return value, None


def float_note(value: Any) -> str:
    """A sentence to append to a passing verdict when a float was asked and a tensor or array came back.

    Such answers are accepted (numbers are numbers), but the exercise asked for a Python float:
    the note says so, and why it matters. Empty for Python and NumPy scalars.
    """
    if isinstance(value, torch.Tensor):
        grad = (" It also carries a gradient, so it keeps the whole computation graph alive in memory."
                if value.requires_grad else "")
        return (f" (The checker accepted the one-element tensor you returned, but the exercise asks for a float: "
                f"end with .item() or float(...).{grad})")
    if isinstance(value, np.ndarray):
        return (" (The checker accepted the one-element array you returned, but the exercise asks for a float: "
                "end with .item() or float(...).)")
    return ""


def as_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None,
              ) -> tuple[torch.Tensor | None, Feedback | None]:
    """Convert a learner's tensor (or NumPy array) to a float64 CPU tensor, checking its shape."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.asarray(value))
    if not isinstance(value, torch.Tensor):
        returned = "None: did you forget the `return` statement?" if value is None else type(value).__name__ + "."
        return None, hint(f"{what} should be a tensor, but you returned {returned}")
    if value.is_complex():
        return None, hint(f"{what} should be real, but yours is complex.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        return None, hint(f"{what} should have shape {tuple(shape)}, but yours has shape {tuple(value.shape)}.")
    out = value.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(out).all()):
        return None, hint(f"{what} contains NaN or infinite entries; look for a division by zero or log(0).")
    return out, None


def diagnose(got: float, expected: float, wrong: Mapping[str, float], *, rtol: float = 1e-4,
             atol: float = 1e-6, fallback: str | None = None) -> Feedback | None:
    """Compare ``got`` with ``expected``; if it is off, say which known mistake it matches.

    ``wrong`` maps a hint to the value a typical wrong answer produces on the same case.
    Returns ``None`` when ``got`` is right. When no known mistake matches, the hint is
    ``fallback`` (a sentence saying what to check); the expected value is never shown.
    """
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return None
    for message, value in wrong.items():
        if math.isclose(got, value, rel_tol=rtol, abs_tol=atol):
            return hint(message)
    tail = fallback or ("it is not the right value, and it matches none of the usual mistakes this checker "
                        "knows: go back to the definition in the exercise and check each step on a small case "
                        "by hand.")
    return hint(f"you returned {got:.6g}; {tail}")
