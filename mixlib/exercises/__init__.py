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
- **No library shortcut.** Each checker declares the functions that compute its answer: the
  ``mixlib`` functions that do (``mixlib.flatness.class_dimension`` for the class dimension) and
  the checker module's own reference helpers (private, with a leading underscore). If the
  learner's function runs one of them during a call, however it reached it (imported by name,
  through its module, through a ``mixlib.`` re-export, under another name, or passed as the answer
  itself), the verdict is "❌ Not yet — you called `...`": never ✅, with no expected value, and
  ``strict=True`` raises. It is seen by the code object that runs (``sys.setprofile`` while the
  learner's function runs, see :class:`runner.CallWatcher`), so wrappers made with
  ``functools.wraps`` count too; the time limits work as before, and a profile function already
  set is chained and put back.
- **Hints in stages.** The kernel remembers, per checker, how many wrong answers it has seen
  since the last correct one. The first wrong answer gets a conceptual nudge (what to look at:
  no formula, no code), the second the specific mistake, and the third and later ones also the
  formula or code that fixes it, where the hint has one. A correct answer starts the count again.
  Only wrong answers count: "Not attempted yet", an exception, a time-out, a changed argument, a
  library shortcut and an answer of the wrong form (not a number, a wrong shape, a missing
  ``return``) are answered in full at once and leave the count alone. ``strict=True`` (the
  book's solution cells) gives the whole hint, formula included, and neither counts nor resets.
  :func:`reset_hints` forgets the count and :func:`hint_stage` pins the stage (for tests).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import numbers
import re
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import CodeType
from typing import Any

import numpy as np
import torch

from . import runner

__all__ = [
    "CHECK_TIME_LIMIT", "TIME_LIMIT", "ExerciseFailed", "Feedback", "as_float", "as_tensor", "call",
    "check_callable", "checker", "diagnose", "finish", "float_note", "form_hint", "given_arguments", "hint",
    "hint_stage", "passed", "prefixed", "reset_hints", "shortcuts_of", "staged",
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

    A failing verdict about a wrong answer (``wrong``) is shown in stages (see the module's
    docstring): ``message`` names the mistake and ``formula``, if any, is what a later stage adds
    (the formula or code that fixes it). ``stage`` is the stage shown (0 when not staged);
    ``shortcut`` the library function the answer called, for that verdict.
    """

    passed: bool
    message: str
    output: str = ""
    attempted: bool = True
    formula: str = ""
    wrong: bool = True
    stage: int = 0
    shortcut: str = ""

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


class _Staged(str):
    """A hint's text that also knows its two stages: ``specific`` (the mistake) and ``formula`` (the fix).

    As a string it is both, joined, so that text built from it by hand still says everything.
    """

    specific: str
    formula: str

    def __new__(cls, specific: str, formula: str) -> _Staged:
        text = super().__new__(cls, _join(specific, formula))
        text.specific, text.formula = specific, formula
        return text


def _join(message: str, formula: str) -> str:
    return f"{message} {formula}" if formula else message


def staged(specific: str, formula: str) -> str:
    """A hint in two stages: ``specific`` names the mistake without giving the formula or code that
    fixes it; ``formula`` gives it, and is shown only from the third wrong answer on.

    Use it wherever a hint's text goes: ``hint(staged(...))``, or as a key of :func:`diagnose`'s
    ``wrong`` mapping, or as its ``fallback``.
    """
    return _Staged(specific, formula)


def passed(message: str) -> Feedback:
    """A passing verdict."""
    return Feedback(True, message)


def hint(message: str, formula: str = "") -> Feedback:
    """A failing verdict about a wrong answer, shown in stages (see :func:`staged`).

    ``message`` names the mistake; ``formula``, if given, is the formula or code that fixes it.
    """
    if isinstance(message, _Staged):
        message, formula = message.specific, _join(message.formula, formula)
    return Feedback(False, str(message), formula=formula)


def form_hint(message: str) -> Feedback:
    """A failing verdict about the form of the answer or how it ran (not a number, a wrong shape, a
    missing ``return``, an exception): shown in full at once, and not counted as a wrong answer."""
    return Feedback(False, message, wrong=False)


def prefixed(prefix: str, feedback: Feedback) -> Feedback:
    """``feedback`` with ``prefix`` (say, which case it is about) put before its message."""
    return replace(feedback, message=prefix + feedback.message)


def _not_attempted() -> Feedback:
    return Feedback(False, NOT_ATTEMPTED, attempted=False, wrong=False)


def finish(feedback: Feedback, strict: bool) -> Feedback:
    """Return ``feedback``, or raise :class:`ExerciseFailed` if it failed and ``strict`` is set."""
    if strict and not feedback.passed:
        raise ExerciseFailed(str(feedback))
    return feedback


def check_callable(answer: object, name: str) -> Feedback | None:
    """A failing verdict if ``answer`` is not a function, else ``None``."""
    if not callable(answer):
        return form_hint(f"pass your function itself, `{name}`, not {type(answer).__name__} "
                         f"(write `check({name})`, not `check({name}(...))`).")
    return None


# --- Calling the learner's function --------------------------------------------------------------
def _mutation_hint(name: str, kind: str) -> Feedback:
    if kind == "model":
        return form_hint(f"your function changed the parameters of `{name}` (for example by zeroing its weights, "
                         "writing into them with .copy_() or .fill_(), or taking an optimiser step). Use the model "
                         "as it is given: evaluate it, don't modify it.")
    return form_hint(f"your function changed its argument `{name}` in place (with +=, *=, an assignment such as "
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
        return form_hint(f"your function called exit() or sys.exit(){code}{_where(exc, answer)}, which raises "
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
    return form_hint(message)


def _timeout_hint(session: runner.Session, limit: float, by_total: bool) -> Feedback:
    if by_total:
        return form_hint(f"your function is too slow: the checker called it {runner.plural(session.calls, 'time')}, "
                         f"and together the calls ran past the {session.total_limit:g} seconds a check may take. Look "
                         "for a Python loop that a tensor operation could replace, or for work repeated on every "
                         "call.")
    return form_hint(f"your function was stopped after {limit:g} seconds without returning (call "
                     f"{session.calls} of this check). Look for a loop that never ends: a `while` loop whose "
                     "condition never turns false, or a counter that is never updated. The kernel is fine: fix "
                     "the function, run its cell again, then run the checker again.")


def _shortcut_hint(name: str, what: str) -> Feedback:
    short = name.rsplit(".", 1)[-1]
    if what:
        text = (f"you called `{name}`, which computes {what}. That is the library's work, not yours: the "
                f"exercise asks you to write it yourself. Do that without `{short}`, then compare your result "
                "with the library's.")
    else:
        text = (f"you called `{name}`, the checker's own answer key. The exercise asks you to write the "
                f"computation yourself: do that without `{short}`, and let the checker compare.")
    return Feedback(False, text, wrong=False, shortcut=name)


def call(answer: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Feedback | None]:
    """Call the learner's function on copies of ``args``; return ``(value, None)`` or ``(None, hint)``.

    The call runs under the check's time limit, with its printed output captured and the global
    state (see the module's docstring) restored afterwards. Every exception except
    ``KeyboardInterrupt`` becomes a hint; so does a change the function made to its arguments,
    and a call of one of the check's library shortcuts (which the session also remembers).
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
    watcher = runner.CallWatcher(session.shortcuts)
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(session.output), contextlib.redirect_stderr(session.output), \
                warnings.catch_warnings(), watcher:
            value = runner.run_limited(answer, given, given_kwargs, limit, timer)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the learner's bug, SystemExit included: a hint, not a crash
        if timer["fired"]:  # the function caught the time-out and raised something else
            return None, _timeout_hint(session, limit, by_total=limit < session.time_limit)
        if watcher.hit is not None:  # a library function that computes the answer, called wrongly
            session.shortcut = session.shortcut or watcher.hit
            return None, _shortcut_hint(*watcher.hit)
        if isinstance(exc, NotImplementedError):
            return None, _not_attempted()
        return None, _exception_hint(exc, answer, session)
    finally:
        session.used += time.monotonic() - started
        state.restore()
    if timer["fired"]:
        return None, _timeout_hint(session, limit, by_total=limit < session.time_limit)
    if watcher.hit is not None:
        session.shortcut = session.shortcut or watcher.hit
        return None, _shortcut_hint(*watcher.hit)
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


# --- Staged hints ------------------------------------------------------------------------------
#: Wrong answers seen per checker since its last correct answer (non-strict checks only).
_wrong_answers: dict[str, int] = {}
#: The stage every wrong answer gets while :func:`hint_stage` pins one, else None.
_pinned_stage: int | None = None

#: The stage that adds the formula or code.
LAST_STAGE = 3
_NUDGE_TAIL = "(A first hint. If your next answer is still wrong, the checker will name the mistake.)"
_FORMULA_TAIL = "(Still stuck after your next try? The hint will then also show how to write it.)"


def _key(check: Callable[..., Any]) -> str:
    key = getattr(check, "__exercise_key__", None)
    if key is None:
        raise TypeError(f"{check!r} is not a checker made with mixlib.exercises.checker")
    return key


def reset_hints(check: Callable[..., Any] | None = None, *, stage: int = 1) -> None:
    """Forget the wrong answers that ``check`` (every checker, if ``None``) has seen.

    Its next wrong answer then gets hint stage ``stage``: 1, the nudge (the default); 2, the
    specific mistake; 3, the mistake and its formula. ``stage`` other than 1 needs a ``check``.
    """
    if not 1 <= stage <= LAST_STAGE:
        raise ValueError(f"stage must be 1, 2 or 3, got {stage!r}")
    if check is None:
        if stage != 1:
            raise ValueError("give the checker whose stage to set")
        _wrong_answers.clear()
        return
    if stage == 1:
        _wrong_answers.pop(_key(check), None)
    else:
        _wrong_answers[_key(check)] = stage - 1


@contextlib.contextmanager
def hint_stage(stage: int | None) -> Iterator[None]:
    """Inside the block, every wrong answer gets hint stage ``stage`` and is not counted (for tests).

    ``None`` lifts a pin set outside, so that the block counts as a kernel would.
    """
    global _pinned_stage
    if stage is not None and not 1 <= stage <= LAST_STAGE:
        raise ValueError(f"stage must be None, 1, 2 or 3, got {stage!r}")
    outer, _pinned_stage = _pinned_stage, stage
    try:
        yield
    finally:
        _pinned_stage = outer


def _stage(key: str, nudge: str | None, feedback: Feedback, strict: bool) -> Feedback:
    """``feedback`` as the learner sees it at this point of their attempts, and the count updated."""
    if strict:  # the book's build: everything at once, and the learner's count left alone
        return feedback if feedback.passed or not feedback.wrong else replace(
            feedback, message=_join(feedback.message, feedback.formula), stage=LAST_STAGE)
    if feedback.passed:
        _wrong_answers.pop(key, None)
        return feedback
    if not feedback.wrong:
        return feedback
    if _pinned_stage is not None:
        stage = _pinned_stage
    else:
        _wrong_answers[key] = _wrong_answers.get(key, 0) + 1
        stage = min(_wrong_answers[key], LAST_STAGE)
    if stage == 1 and nudge:
        message = f"{nudge[:1].lower()}{nudge[1:]} {_NUDGE_TAIL}"
    elif stage == LAST_STAGE or not feedback.formula:
        message = _join(feedback.message, feedback.formula)
    else:
        message = f"{feedback.message} {_FORMULA_TAIL}"
    return replace(feedback, message=message, stage=stage)


# --- Library shortcuts ---------------------------------------------------------------------------
Shortcut = Callable[..., Any] | str | tuple[Callable[..., Any] | str, str]


def _resolve(target: Callable[..., Any] | str) -> tuple[Any, str]:
    """The function named by a dotted path (``"mixlib.manifold.StagedNet.forward_mixed"``), or given."""
    if not isinstance(target, str):
        return target, f"{target.__module__}.{target.__qualname__}"
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj, target
    raise ValueError(f"cannot import {target!r}")


def _shortcut_codes(shortcuts: Sequence[Shortcut]) -> dict[CodeType, tuple[str, str]]:
    """Code object -> (name, what it computes) for each declared shortcut."""
    codes: dict[CodeType, tuple[str, str]] = {}
    for entry in shortcuts:
        target, what = entry if isinstance(entry, tuple) else (entry, None)
        fn, name = _resolve(target)
        if what is None:
            what = "" if name.startswith(__name__ + ".") else "exactly what this exercise asks for"
        found = runner.code_objects(fn)
        if not found:
            raise ValueError(f"{name} has no Python code to watch for")
        for code in found:
            codes.setdefault(code, (name, what))
    return codes


def shortcuts_of(check: Callable[..., Any]) -> dict[str, str]:
    """The library shortcuts a checker watches for: dotted name -> what it computes ('' for an answer key)."""
    return {name: what for name, what in check.__shortcut_codes__().values()}  # type: ignore[attr-defined]


# --- The decorator every checker uses ------------------------------------------------------------
def checker(signature: str, *, nudge: str | None = None, shortcuts: Sequence[Shortcut] = (),
            ) -> Callable[[Callable[[Callable[..., Any]], Feedback]], Callable[..., Feedback]]:
    """Turn ``body(answer) -> Feedback`` into ``check(answer, strict=False, *, time_limit=None)``.

    ``signature`` is how the checker calls the learner's function, e.g.
    ``"mixup_batch(x, y, lam, perm)"``: its name is used in hints and its argument names
    name an argument the function changed. The wrapper checks that ``answer`` is callable,
    runs ``body`` in a session (time limits, captured output, global state restored), turns a
    crash of the checker itself on a strange answer into a hint, attaches the captured output,
    stages the hint and applies ``strict``.

    ``nudge`` is the first stage of every wrong answer's hint: one sentence on what to look at,
    with no formula and no code (without one, the first wrong answer gets the specific hint).
    ``shortcuts`` are the functions that compute the answer: a function, a dotted name
    (``"mixlib.flatness.class_dimension"``, imported at the first check), or a pair of either and
    what it computes when that is less than the whole answer (``"the third of the three
    numbers"``). A checker module's own reference helpers count as its answer key.
    """
    match = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", signature)
    if match is None:
        raise ValueError(f"signature must look like 'name(a, b)', got {signature!r}")
    name = match.group(1)
    arg_names = tuple(a.strip() for a in match.group(2).split(",") if a.strip())
    declared = tuple(shortcuts)

    def decorate(body: Callable[[Callable[..., Any]], Feedback]) -> Callable[..., Feedback]:
        key = f"{body.__module__}.{body.__qualname__}"

        @functools.cache
        def shortcut_codes() -> dict[CodeType, tuple[str, str]]:
            return _shortcut_codes(declared)

        @functools.wraps(body)
        def check(answer: Callable[..., Any], strict: bool = False, *, time_limit: float | None = None) -> Feedback:
            problem = check_callable(answer, name)
            if problem is not None:
                return finish(problem, strict)
            limit = TIME_LIMIT if time_limit is None else time_limit
            with runner.checking(name, arg_names, signature, limit, CHECK_TIME_LIMIT,
                                 shortcut_codes()) as session:
                try:
                    feedback = body(answer)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # the checker could not digest an unusual answer
                    feedback = form_hint(f"the checker could not make sense of what your function returned "
                                         f"({type(exc).__name__}: {exc}). Check that it returns what the "
                                         f"exercise asks for, in the form `{signature}` describes.")
            if session.shortcut is not None:  # whatever the body made of it
                feedback = _shortcut_hint(*session.shortcut)
            feedback = _stage(key, nudge, feedback, strict)
            output = session.output.summary()
            if output:
                feedback = replace(feedback, output=output)
            return finish(feedback, strict)

        check.__signature_of_answer__ = signature  # type: ignore[attr-defined]
        check.__exercise_key__ = key  # type: ignore[attr-defined]
        check.__nudge__ = nudge  # type: ignore[attr-defined]
        check.__shortcut_codes__ = shortcut_codes  # type: ignore[attr-defined]
        return check

    return decorate


# --- Reading the learner's results ---------------------------------------------------------------
def as_float(value: Any, what: str) -> tuple[float | None, Feedback | None]:
    """Convert a learner's number to ``float``, or explain why not.

    Accepts Python and NumPy real numbers, and one-element tensors and arrays (0-d included,
    on any device, of any real dtype).
    """
    if value is None:
        return None, form_hint(f"{what} should be a number, but your function returned None: did you forget "
                               "the `return` statement?")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        shape = tuple(value.shape)
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            kind = "a tensor" if isinstance(value, torch.Tensor) else "an array"
            return None, form_hint(f"{what} should be a single number, but you returned {kind} of shape "
                                   f"{shape}. Did you forget to average (or to sum) over it?")
        is_complex = value.is_complex() if isinstance(value, torch.Tensor) else np.iscomplexobj(value)
        if is_complex:
            return None, form_hint(f"{what} should be a real number, but yours is complex.")
        value = value.detach().cpu().reshape(()).item() if isinstance(value, torch.Tensor) else value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        return None, form_hint(f"{what} should be a number, but you returned the truth value {value}.")
    if not isinstance(value, numbers.Real):
        return None, form_hint(f"{what} should be a number, but you returned {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value):
        return None, form_hint(f"{what} came out as {value}; look for a division by zero or log(0).")
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
        return None, form_hint(f"{what} should be a tensor, but you returned {returned}")
    if value.is_complex():
        return None, form_hint(f"{what} should be real, but yours is complex.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        return None, form_hint(f"{what} should have shape {tuple(shape)}, but yours has shape "
                               f"{tuple(value.shape)}.")
    out = value.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(out).all()):
        return None, form_hint(f"{what} contains NaN or infinite entries; look for a division by zero or log(0).")
    return out, None


def diagnose(got: float, expected: float, wrong: Mapping[str, float], *, rtol: float = 1e-4,
             atol: float = 1e-6, fallback: str | None = None) -> Feedback | None:
    """Compare ``got`` with ``expected``; if it is off, say which known mistake it matches.

    ``wrong`` maps a hint to the value a typical wrong answer produces on the same case.
    Returns ``None`` when ``got`` is right. When no known mistake matches, the hint is
    ``fallback`` (a sentence saying what to check); the expected value is never shown. A hint made
    with :func:`staged` keeps its formula for the last stage.
    """
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return None
    for message, value in wrong.items():
        if math.isclose(got, value, rel_tol=rtol, abs_tol=atol):
            return hint(message)
    tail = fallback or ("it is not the right value, and it matches none of the usual mistakes this checker "
                        "knows: go back to the definition in the exercise and check each step on a small case "
                        "by hand.")
    return prefixed(f"you returned {got:.6g}; ", hint(tail))
