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
  check together for :data:`CHECK_TIME_LIMIT`. The timer stops even ``while True: pass``, and
  stops again a function that catches the time-out once (``mixlib.exercises.runner`` says how,
  thread by thread and platform by platform). One long operation in C (a huge matrix product)
  is interrupted only when it returns, and a loop that swallows every exception forever
  (``while True: try: ... except: pass``) cannot be stopped from inside the process, not even
  by the notebook's stop button. After a time-out the kernel is usable as before.
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
import functools
import math
import numbers
import re
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from . import runner

__all__ = [
    "CHECK_TIME_LIMIT", "TIME_LIMIT", "ExerciseFailed", "Feedback", "as_float", "as_tensor", "call",
    "check_callable", "checker", "diagnose", "finish", "float_note", "given_arguments", "hint", "passed",
]

#: Seconds one call of the learner's function may run (generous for two slow CPU cores).
TIME_LIMIT = 10.0
#: Seconds all the calls of one check may run together; read at each check, so setting it takes effect.
CHECK_TIME_LIMIT = 60.0
#: How many lines of the learner's printed output a feedback shows.
OUTPUT_LINES = runner.OUTPUT_LINES


class ExerciseFailed(AssertionError):
    """Raised by a checker called with ``strict=True`` when the answer is wrong."""


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


# --- Calling the learner's function --------------------------------------------------------------
def _mutation_hint(name: str, kind: str) -> Feedback:
    if kind == "model":
        return hint(f"your function changed the parameters of `{name}` (for example by zeroing its weights, "
                    "writing into them with .copy_() or .fill_(), or taking an optimiser step). Use the model "
                    "as it is given: evaluate it, don't modify it.")
    return hint(f"your function changed its argument `{name}` in place (with +=, *=, an assignment such as "
                f"{name}[i] = ..., or a method ending in an underscore such as .add_() or .clamp_()). The "
                f"caller still needs `{name}` as it was: build new tensors instead ({name} = {name} * 2 rather "
                f"than {name} *= 2).")


def _where(exc: BaseException, answer: Callable[..., Any]) -> str:
    """' (line N of f)' for the deepest frame of the learner's own code, if there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    code = getattr(answer, "__code__", None)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename]
    own = {__file__.removesuffix("c"), runner.__file__.removesuffix("c")}  # the checker's machinery
    chosen = mine[-1] if mine else next((f for f in reversed(frames) if f.filename not in own), None)
    if chosen is None:
        return ""
    return f" (line {chosen.lineno} of {chosen.name})"


def _exception_hint(exc: BaseException, answer: Callable[..., Any], session: runner.Session) -> Feedback:
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


def _timeout_hint(session: runner.Session, limit: float, by_total: bool) -> Feedback:
    if by_total:
        return hint(f"your function is too slow: the checker called it {runner.plural(session.calls, 'time')}, and "
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
    session = runner.current_session()
    if session is None:  # called outside a checker: give it a session of its own
        name = getattr(answer, "__name__", "function")
        with runner.checking(name, (), f"{name}(...)", TIME_LIMIT, CHECK_TIME_LIMIT):
            return call(answer, *args, **kwargs)
    given, given_kwargs = runner.copy_for_learner(args), runner.copy_for_learner(kwargs)
    session.given, session.given_kwargs = given, given_kwargs
    session.calls += 1
    remaining = session.total_limit - session.used
    limit = min(session.time_limit, remaining)
    if limit <= 0:
        return None, _timeout_hint(session, session.time_limit, by_total=True)
    state = runner.State(rng=False)
    timer: dict[str, bool] = {"fired": False}
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(session.output), contextlib.redirect_stderr(session.output), \
                warnings.catch_warnings():
            value = runner.run_limited(answer, given, given_kwargs, limit, timer)
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
        kind = runner.changed(original, copied)
        if kind is not None:
            return None, _mutation_hint(names[i] if i < len(names) else f"argument {i + 1}", kind)
    for key, original in kwargs.items():
        kind = runner.changed(original, given_kwargs[key])
        if kind is not None:
            return None, _mutation_hint(key, kind)
    if value is None and runner.is_stub(answer):
        return None, _not_attempted()
    return value, None


def given_arguments() -> tuple[Any, ...]:
    """The copies of the positional arguments that the last :func:`call` handed to the learner's function."""
    session = runner.current_session()
    if session is None:
        raise RuntimeError("given_arguments() is only meaningful inside a checker")
    return session.given


# --- The decorator every checker uses ------------------------------------------------------------
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
            limit = TIME_LIMIT if time_limit is None else time_limit
            with runner.checking(name, arg_names, signature, limit, CHECK_TIME_LIMIT) as session:
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


# --- Reading the learner's results ---------------------------------------------------------------
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
