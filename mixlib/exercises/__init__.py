"""Checkers for the exercises at the end of each chapter.

A checker takes the learner's function, runs it on cases whose answers it knows and
returns a :class:`Feedback`: "✅ Correct — ..." when everything matches, otherwise
"❌ Not yet — ..." with a hint that names the likely mistake. Pass ``strict=True`` to raise
:class:`ExerciseFailed` instead of returning a failed feedback (the book's own solutions do,
so a wrong solution breaks the build). One module per chapter:
``from mixlib.exercises import ch01``.

Every checker is built with :func:`checker` and calls the learner's function only through
:func:`call`, which gives the guarantees below. They hold against honest mistakes and habits
(a checker cannot be fooled or broken by accident) and against the easy tricks (a tensor that
says it equals everything, a patched ``math.isclose``, a disarmed timer); what a deliberate
attacker can still do is listed at the end.

- **A time limit.** Each call of the learner's function may run for ``time_limit`` seconds
  (:data:`TIME_LIMIT` by default; every checker takes ``time_limit=``), and all the calls of one
  check together for :data:`CHECK_TIME_LIMIT`. The timer stops even ``while True: pass``, and
  stops again a function that catches the time-out once (``mixlib.exercises.runner`` says how,
  thread by thread and platform by platform); a watchdog thread beside the ``SIGALRM`` timer stops
  a function that blocks or ignores ``SIGALRM``, replaces its handler or disarms the timer (and
  what it did is put back). One long operation in C (a huge matrix product or decomposition) is
  interrupted only when it returns: the hint then says "one long operation" and gives the real
  time it ran. A loop that swallows every exception forever (``while True: try: ... except:
  pass``) cannot be stopped from inside the process, not even by the notebook's stop button.
  After a time-out the kernel is usable as before.
- **Every failure answered.** Any exception, ``SystemExit`` included, becomes a failing
  feedback naming the exception and the line of the learner's code it came from, in the
  learner's function, in a method of what it returned, or in its code that the checker runs
  later (an autograd hook while the checker differentiates). Only a ``KeyboardInterrupt`` (the
  notebook's stop button) passes through. Autograd's errors that a habit explains get their own
  hint: ``.backward()`` inside the function ("backward through the graph a second time"), an
  in-place change of a tensor autograd saved. A function that still raises
  ``NotImplementedError``, or whose body is still only ``...`` or ``pass`` (the stub), gets "Not
  attempted yet: ..." (a failing feedback; ``strict=True`` raises).
- **Plain values compared.** What the function returns is converted inside the time limit
  (:func:`runner.plain`): a tensor subclass becomes a plain tensor (its ``__torch_function__``
  never runs, so it cannot answer ``allclose`` with ``True``), subclasses of ``float``, ``tuple``,
  ``dict`` and the like become the built-in type, another real number becomes a ``float`` through
  its ``__float__`` (a loop or an exit there is stopped or answered), and any other object a
  stand-in with its type's name. No code of the learner's runs while the checker compares.
- **Functions and modules as they were.** The comparison functions the checkers use
  (``math.isclose``, ``torch.allclose``, NumPy's, the built-ins, the methods of ``torch.Tensor``)
  are bound when ``mixlib.exercises`` is imported, and a check runs with those even if the
  notebook replaced them before (the verdict says so). A function that replaces or removes a
  library function, a method of ``torch.Tensor`` or ``nn.Module``, a global of a ``mixlib``
  module (a checker's reference included), or the code of a ``mixlib`` function, during its call
  or in code the checker runs later, gets "❌ Not yet — your function changed `math.isclose`"
  and everything is put back, so the notebook's own asserts work afterwards. A library imported
  for the first time during the call may wrap its own functions (``torch._dynamo`` wraps
  ``torch.manual_seed``): a replacement written in a library's file is left alone.
- **References first, copies to the learner.** Checkers compute their reference answers before
  they call the learner's function, and :func:`call` hands it deep copies of tensors, arrays,
  models and containers (``torch.Generator`` arguments are passed as they are: drawing from
  them is the point). A function that changes an argument in place, or a model's parameters,
  is rejected with a hint, and cannot corrupt the reference.
- **Global state restored, and named.** After each call (:class:`runner.State`): torch's default
  dtype and device, grad, anomaly and deterministic-algorithm modes, threads, autocast, float32
  matmul precision, backend flags, print options, function and dispatch modes left active and
  saved-tensor hooks; NumPy's print options and ``np.seterr``; the recursion limit, the signal
  handlers (``SIGINT``: the stop button) and the signal mask, the working directory,
  ``os.environ``, ``sys.path``, ``sys.stdout``, Python's hooks, trace and profile functions,
  garbage collection; and the warning filters. The verdict names what the function changed
  ("Your function also changed the recursion limit; the checker put it back"), and what could
  not be put back (inference mode left on): a right answer still passes. After the whole check,
  also the random number generators (torch on the CPU and, if initialised, on CUDA; NumPy's
  global one; Python's ``random``).
- **Numbers are numbers.** Wherever a number is asked, a Python ``int`` or ``float``, a NumPy
  scalar, a one-element array or tensor (0-d included, on any device, of any real dtype) is
  accepted; results are compared on the CPU in float64.
- **Quiet.** What the learner's function prints (stdout and stderr) is captured; the
  feedback shows its first few lines and says how many were left out.
- **Honest hints.** A hint never reveals the expected value of the quantity asked for, and no
  reply depends on how close a wrong value is to the right one beyond the checker's tolerance, so
  trying values and reading the replies leads nowhere: an estimate is named by what the function
  did (it drew random numbers: "a Monte Carlo estimate", :func:`estimate_hint`) or returned (a
  rounded number), not by being near the answer. The one exception is :func:`float32_hint`: when
  the inputs were float64 and the function returned float32 numbers within float32 rounding
  (:data:`FLOAT32_RTOL`) of the answer, it asks "did you compute in float32?".
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

What a deliberate attacker can still do: the learner's code runs in the checker's own process,
with the checker's privileges. It can read the expected values from the checker's stack frames
(``sys._getframe``) or from memory (``gc``, ``ctypes``), edit the checker's modules or files
before the check starts (only the comparison functions above are bound at import), leave a
thread running that patches things after the check, patch what is not watched (a method of a
class outside ``mixlib``, ``torch.Tensor`` and ``nn.Module``, an attribute of an object rather
than of a module), replace a function with another library's function during an import, swallow
every exception in a loop, or narrow the answer down through the float32 hint (a window of
``FLOAT32_RTOL`` around it, open only to float32 numbers). Only a separate process could stop
that; these checkers are feedback for learning, not an exam.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import numbers
import re
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
    "CHECK_TIME_LIMIT", "FLOAT32_RTOL", "TIME_LIMIT", "ExerciseFailed", "Feedback", "as_float", "as_tensor", "call",
    "check_callable", "checker", "diagnose", "estimate_hint", "finish", "float32_hint", "float_note", "form_hint",
    "given_arguments", "hint", "hint_stage", "looks_rounded", "passed", "prefixed", "progress", "reset_hints",
    "shortcuts_of", "staged",
]

#: Seconds one call of the learner's function may run (generous for two slow CPU cores).
TIME_LIMIT = 10.0
#: Seconds all the calls of one check may run together; read at each check, so setting it takes effect.
CHECK_TIME_LIMIT = 60.0
#: How many lines of the learner's printed output a feedback shows.
OUTPUT_LINES = runner.OUTPUT_LINES


class ExerciseFailed(AssertionError):
    """Raised by a checker called with ``strict=True`` when the answer is wrong."""


# a neutral mark: a fresh "Run All" of a student edition is a page of open boxes, not of failures
NOT_ATTEMPTED_MARK = "⬜"
NOT_ATTEMPTED = ("Not attempted yet: fill in the function in this cell (replace `raise NotImplementedError` "
                 "with your code), then run the cell again.")


@dataclass(frozen=True)
class Feedback:
    """The verdict of a checker: ``passed``, a message for the learner, and what their function printed.

    It is truthy exactly when the answer passed, so ``assert check(...)`` works. Its text
    starts with an emoji and a word label ("✅ Correct —", "❌ Not yet —", or "⬜ Not attempted
    yet:"). In IPython the checker displays it as soon as it is known, so a line after the call
    cannot hide it; the same verdict, as the cell's last expression, is not shown twice.

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
            text = f"{NOT_ATTEMPTED_MARK} {self.message}"
        else:
            text = f"❌ Not yet — {self.message}"
        return f"{text}\n{self.output}" if self.output else text

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display
        printer.text(str(self))

    def _ipython_display_(self) -> None:
        """Show the verdict, unless the checker already showed this one in the running cell."""
        if _shown_in_this_cell(self):
            return
        from IPython.display import display

        display({"text/plain": str(self)}, raw=True)


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


# --- Showing verdicts and keeping score ---------------------------------------------------------------
_shown: dict[int, int] = {}   # id of a verdict the checker displayed -> the IPython execution count then


def _kernel_shell() -> Any:
    """The running IPython shell, or None in plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return None
    return get_ipython()


def _show(feedback: Feedback) -> None:
    """Display ``feedback`` now, in IPython; remember it so the cell's result does not repeat it."""
    shell = _kernel_shell()
    if shell is None:
        return
    _shown.clear()  # only the latest verdict can be the cell's last expression
    Feedback._ipython_display_(feedback)
    _shown[id(feedback)] = shell.execution_count


def _shown_in_this_cell(feedback: Feedback) -> bool:
    shell = _kernel_shell()
    return shell is not None and _shown.get(id(feedback)) == shell.execution_count


# In book order: chapter -> the checkers of its exercises (tests compare this with the chapters).
EXERCISES: dict[int, tuple[str, ...]] = {
    1: ("check_vicinal_risk", "check_segment_confidence", "check_far_confident_share"),
    2: ("check_mixup_batch", "check_ece", "check_lambda_moments", "check_chord_gap"),
    3: ("check_effective_rank", "check_mix_with_hook", "check_sample_weighted_layer"),
    4: ("check_terms_from_gradients", "check_mixing_constant", "check_expected_loss_others"),
    5: ("check_mixed_logit_ce", "check_best_scale", "check_mixup_losses"),
    6: ("check_cross_terms_loss", "check_paired_interval", "check_expected_last_layer_loss"),
    7: ("check_curvature", "check_class_dimension", "check_interpolant"),
}
_results: dict[str, str] = {}   # "ch01.check_vicinal_risk" -> "passed" or "tried"


def _record(key: str, feedback: Feedback) -> None:
    short = key.removeprefix(f"{__name__}.")
    if feedback.passed or _results.get(short) == "passed":
        _results[short] = "passed"
    elif feedback.attempted:
        _results[short] = "tried"


def progress() -> dict[str, str]:
    """Print, per chapter, which exercises passed in this kernel; return ``{"1.1": "passed", ...}``.

    An exercise counts as passed once any answer to it passed, as tried when only wrong answers
    were checked, and as not tried otherwise. Only this kernel's checks are known: a restarted
    kernel starts from nothing.
    """
    marks = {"passed": "✅", "tried": "❌", "not tried": NOT_ATTEMPTED_MARK}
    table: dict[str, str] = {}
    lines = ["Exercises checked in this kernel (✅ passed, ❌ tried, ⬜ not tried yet)"]
    for chapter, names in EXERCISES.items():
        cells = []
        for number, name in enumerate(names, start=1):
            state = _results.get(f"ch{chapter:02d}.{name}", "not tried")
            table[f"{chapter}.{number}"] = state
            cells.append(f"{marks[state]} {chapter}.{number}")
        passed = sum(table[f"{chapter}.{n}"] == "passed" for n in range(1, len(names) + 1))
        lines.append(f"Chapter {chapter}: {'  '.join(cells)}   ({passed} of {len(names)} passed)")
    print("\n".join(lines))
    return table


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
    frames = traceback.extract_tb(BaseException.__traceback__.__get__(exc))
    code = runner._code_of(answer)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename]
    own = {__file__.removesuffix("c"), runner.__file__.removesuffix("c")}  # the checker's machinery
    chosen = mine[-1] if mine else next((f for f in reversed(frames) if f.filename not in own), None)
    if chosen is None:
        return ""
    return f" (line {chosen.lineno} of {chosen.name})"


def _text_of(exc: BaseException) -> str:
    """``str(exc)`` on one line, at most 300 characters: run under a time limit, since an exception class of
    the learner's can define ``__str__`` (empty if that fails)."""
    timer: dict[str, Any] = {}
    try:
        text = runner.run_limited(lambda: str.__str__(str(exc)), (), {}, 1.0, timer)
    except KeyboardInterrupt:
        raise
    except BaseException:
        text = None
    text = " ".join((text or "").split())
    return text[:300] + " …" if len(text) > 300 else text


#: Autograd's errors that a learner's habit explains: the error's words -> the hint's sentence.
_AUTOGRAD_HINTS = {
    "backward through the graph a second time":
        "A graph can be walked backward only once: your function (or the checker, after it) ran .backward() "
        "or autograd.grad a second time through the same graph. Inside a function that returns a loss, do not "
        "call .backward() (a training-loop habit): return the loss and let the caller differentiate it.",
    "modified by an inplace operation":
        "An in-place operation (+=, *=, an indexed assignment such as h[i] = ..., or a method ending in _ such "
        "as .add_() or .clamp_()) overwrote a tensor that autograd had saved for the backward pass. Write that "
        "step out of place (h = h * 2 rather than h *= 2, torch.where(...) rather than an assignment).",
    "leaf Variable that requires grad is being used in an in-place operation":
        "An in-place operation (+=, an indexed assignment, a method ending in _) changed a tensor that requires "
        "a gradient and was not computed from anything (a leaf). Build a new tensor instead (x = x + 1).",
    "does not require grad and does not have a grad_fn":
        "Something was differentiated that has no gradient: a .detach(), .item(), NumPy or torch.no_grad() "
        "cut it off from the inputs.",
}


def _autograd_hint(text: str) -> str:
    return next((hint for words, hint in _AUTOGRAD_HINTS.items() if words in text), "")


def _first_sentence(text: str) -> str:
    """The start of an error message, up to its first bracket, colon or full stop."""
    return re.split(r" \(|: |\. ", text, maxsplit=1)[0].rstrip(".")


def _exception_hint(exc: BaseException, answer: Callable[..., Any], session: runner.Session) -> Feedback:
    kind = type(exc)
    if issubclass(kind, SystemExit):
        value = SystemExit.code.__get__(exc)
        code = "" if value is None else f" with code {value!r}" if type(value) in (int, str) else " with a code"
        return form_hint(f"your function called exit() or sys.exit(){code}{_where(exc, answer)}, which raises "
                         "SystemExit. A function that a checker calls must hand back its result with `return`; "
                         "it cannot end the program.")
    text = _text_of(exc)
    autograd = _autograd_hint(text)
    if autograd:
        text = _first_sentence(text)
    message = f"your function raised {runner._type_name(kind)}" + (f": {text}" if text else "") + \
        _where(exc, answer)
    if not message.endswith((".", "…")):
        message += "."
    message += f" {autograd}" if autograd else " Fix that first, then run the checker again."
    if issubclass(kind, TypeError) and re.search(r"positional argument|keyword argument|required argument", text):
        message += f" The checker calls it as `{session.signature}`."
    return form_hint(message)


def _body_error_hint(exc: BaseException, signature: str, session: runner.Session) -> Feedback:
    """The verdict when the checker itself failed on what the learner's function returned."""
    text = _text_of(exc)
    autograd = _autograd_hint(text)
    if autograd:
        called = (" Your function did run .backward() through its arguments." if session.backward
                  and "second time" in text else "")
        return form_hint(f"the checker could not differentiate what your function returned (autograd: "
                         f"\"{_first_sentence(text)}\").{called} {autograd}")
    return form_hint(f"the checker could not make sense of what your function returned "
                     f"({runner._type_name(type(exc))}: {text}). Check that it returns what the exercise asks "
                     f"for, in the form `{signature}` describes.")


def _returned_hint(error: runner.ReturnedValueError) -> Feedback:
    inner = error.error
    what = runner._type_name(type(inner))
    detail = "" if issubclass(type(inner), SystemExit) else _text_of(inner)
    return form_hint(f"the checker could not read what your function returned, an object of type "
                     f"{error.type_name}: turning it into a number or a tensor ran its own code, which raised "
                     f"{what}{': ' + detail if detail else ''}. Return a plain Python float, a tensor or an array "
                     "(or a tuple of them), as the exercise asks.")


def _patch_hint(names: Sequence[str]) -> Feedback:
    shown = ", ".join(f"`{n}`" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    them = "it" if len(names) == 1 else "them"
    return form_hint(f"your function changed {shown}: it replaced or removed a library function, a method of a "
                     "class or a name in the checker's own modules, which the checker and your notebook rely on. "
                     f"The checker put {them} back, and it does not accept an answer that changes them: compute "
                     "the answer without assigning to anything outside your function, then run the checker again.")


def _timeout_hint(session: runner.Session, limit: float, by_total: bool, elapsed: float = 0.0,
                  delay: float = 0.0) -> Feedback:
    if delay > runner.LONG_DELAY:  # the time-out took effect only long after it went off
        over = (f"the {session.total_limit:g} seconds all the calls of a check may take" if by_total
                else f"the {limit:g}-second limit")
        return form_hint(f"your function ran for {elapsed:.1f} seconds (call {session.calls} of this check), past "
                         f"{over}, because one long operation took that long: a single call into compiled code, "
                         "such as a product or a decomposition of a large matrix, cannot be interrupted in the "
                         "middle, so the checker could stop your function only when that operation returned. "
                         "Make it smaller or cheaper (smaller matrices, fewer samples, a method that avoids the "
                         "full decomposition). The kernel is fine: fix the function, run its cell again, then run "
                         "the checker again.")
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
    state (see the module's docstring) restored afterwards. What it returns is made plain inside the
    time limit (:func:`runner.plain`), so no code of the learner's runs when the checker reads it.
    Every exception except ``KeyboardInterrupt`` becomes a hint; so does a change the function made
    to its arguments, to a library function, class or checker module (put back, see
    :class:`runner.Guard`), and a call of one of the check's library shortcuts (which the session
    also remembers).
    """
    session = runner.current_session()
    if session is None:  # called outside a checker: give it a session of its own
        code = runner._code_of(answer)
        name = code.co_name if code is not None else "function"
        with runner.checking(name, (), f"{name}(...)", TIME_LIMIT, CHECK_TIME_LIMIT):
            return call(answer, *args, **kwargs)
    given, given_kwargs = runner.copy_for_learner(args), runner.copy_for_learner(kwargs)
    session.given, session.given_kwargs = given, given_kwargs
    session.calls += 1
    remaining = session.total_limit - session.used
    limit = min(session.time_limit, remaining)
    if limit <= 0:
        return None, _timeout_hint(session, session.time_limit, by_total=True)
    session.float64_inputs = runner.float64_only((args, kwargs))
    session.low_precision = session.backward = False
    report = runner.Report()
    timer: dict[str, Any] = {"fired": False}
    watcher = runner.CallWatcher(session.shortcuts, randomness=True)

    def run() -> Any:
        return runner.after_call(answer(*given, **given_kwargs), args, given, kwargs, given_kwargs, report)

    state = runner.State(rng=False)
    guard = runner.Guard(session.watched, session.functions, extra=(session,))
    # kept before the learner's code runs, so that replacing these methods, their code or the names that lead to
    # them changes nothing; the clock too
    own, put_back = guard.own, runner.put_own_back
    put_back_code, put_back_defaults = put_back.__code__, put_back.__defaults__
    fix_builtins, restore_state, restore_guard = guard.fix_builtins, state.restore, guard.restore
    clock = runner._monotonic
    value: Any = None
    error: BaseException | None = None
    started = clock()
    try:
        with contextlib.redirect_stdout(session.output), contextlib.redirect_stderr(session.output), \
                warnings.catch_warnings(), watcher:
            value = runner.run_limited(run, (), {}, limit, timer)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the learner's bug, SystemExit included: a hint, not a crash
        error = exc
    finally:
        elapsed = clock() - started
        # first of all the checker's own code, globals and classes, then the built-in functions
        put_back.__code__, put_back.__defaults__ = put_back_code, put_back_defaults
        patched = put_back(own)
        fix_builtins()
        session.note_restored(timer.get("tampered", []))
        session.note_restored(restore_state())  # before the guard: putting back the default dtype rebinds torch.Storage
        patched += [name for name in restore_guard() if name not in patched]
        session.used += elapsed
    session.random = session.random or watcher.random_use()
    by_total = limit < session.time_limit
    if patched:
        session.patched += [name for name in patched if name not in session.patched]
        return None, _patch_hint(patched)
    if timer["fired"]:  # also when the function caught the time-out and raised something else
        return None, _timeout_hint(session, limit, by_total, elapsed, timer.get("delay", 0.0))
    if watcher.hit is not None:  # a library function that computes the answer, called rightly or wrongly
        session.shortcut = session.shortcut or watcher.hit
        return None, _shortcut_hint(*watcher.hit)
    if error is not None:
        if issubclass(type(error), runner.ReturnedValueError):
            return None, _returned_hint(error)  # type: ignore[arg-type]
        if issubclass(type(error), NotImplementedError):
            return None, _not_attempted()
        return None, _exception_hint(error, answer, session)
    session.low_precision, session.backward = report.low_precision, report.backward
    if report.mutation is not None:
        where, kind = report.mutation
        names = session.arg_names
        name = where if isinstance(where, str) else names[where] if where < len(names) else f"argument {where + 1}"
        return None, _mutation_hint(name, kind)
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


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _notes(session: runner.Session) -> str:
    """What the verdict adds about global state the learner's code changed, and functions the notebook had
    replaced before the check."""
    notes = []
    suffix = " (which could not be put back)"
    put_back = [n for n in session.restored if not n.endswith(suffix)]
    stuck = [n.removesuffix(suffix) for n in session.restored if n.endswith(suffix)]
    if put_back:
        them = "it" if len(put_back) == 1 else "them"
        notes.append(f"(Your function also changed {_listed(put_back)}; the checker put {them} back. A function "
                     "should leave global settings as it found them: where there is a `with` form, such as "
                     "`with torch.no_grad():`, use it.)")
    if stuck:
        notes.append(f"(Your function also changed {_listed(stuck)}, which the checker could not put back: "
                     "restart the kernel to be safe.)")
    if session.swapped:
        names = [f"`{n}`" for n in session.swapped[:3]] + (
            [f"{len(session.swapped) - 3} more"] if len(session.swapped) > 3 else [])
        notes.append(f"(Note: {_listed(names)} had been replaced in this kernel before the check; the checker used "
                     "the originals. Your notebook still sees the replacement: restart the kernel to undo it.)")
    return " ".join(notes)


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
                _show(problem)
                return finish(problem, strict)
            limit = TIME_LIMIT if time_limit is None else time_limit
            with runner.checking(name, arg_names, signature, limit, CHECK_TIME_LIMIT,
                                 shortcut_codes()) as session:
                try:
                    feedback = body(answer)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # the checker could not digest an unusual answer
                    feedback = _body_error_hint(exc, signature, session)
            if session.patched:  # whatever the body made of it, and even if it was the checker that ran the code
                feedback = _patch_hint(session.patched)
            elif session.shortcut is not None:
                feedback = _shortcut_hint(*session.shortcut)
            feedback = _stage(key, nudge, feedback, strict)
            note = _notes(session)
            if note:
                feedback = replace(feedback, message=f"{feedback.message} {note}")
            output = session.output.summary()
            if output:
                feedback = replace(feedback, output=output)
            _record(key, feedback)
            _show(feedback)
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
    :func:`float32_hint`'s if that applies, else ``fallback`` (a sentence saying what to check); the
    expected value is never shown. A hint made with :func:`staged` keeps its formula for the last stage.
    """
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return None
    for message, value in wrong.items():
        if math.isclose(got, value, rel_tol=rtol, abs_tol=atol):
            return hint(message)
    rounding = float32_hint(got, expected)
    if rounding is not None:
        return rounding
    tail = fallback or ("it is not the right value, and it matches none of the usual mistakes this checker "
                        "knows: go back to the definition in the exercise and check each step on a small case "
                        "by hand.")
    return prefixed(f"you returned {got:.6g}; ", hint(tail))


# --- Estimates and float32 detours -------------------------------------------------------------
#: How far (relative to the largest value compared) float32 rounding may take a float64 result.
FLOAT32_RTOL = 5e-5


def looks_rounded(value: float) -> int | None:
    """How many significant digits ``value`` has if it looks rounded by hand (three at most), else ``None``.

    A short binary fraction (a multiple of 1/64, such as 0.375) does not count: exact formulas give those.
    """
    if value == 0 or not math.isfinite(value) or (value * 64).is_integer():
        return None
    return next((digits for digits in (1, 2, 3) if float(f"{value:.{digits}g}") == value), None)


def estimate_hint(got: float, exact: str) -> Feedback | None:
    """A hint for a wrong value that is an estimate, or ``None``: the learner's function drew random numbers
    in this check (a Monte Carlo estimate, seen by :class:`runner.CallWatcher`), or ``got`` looks rounded.

    ``exact`` says what to give instead ("Give the exact formula in alpha instead."). The hint depends only
    on what the function did and returned, never on how close ``got`` is to the right value, so that
    a learner cannot home in on the answer by trying values.
    """
    session = runner.current_session()
    how = session.random if session is not None else None
    if how:
        return hint(f"you returned {got:.6g}, and your function draws random numbers ({how}), which makes it a "
                    f"Monte Carlo estimate: an estimate is never exact. {exact}")
    digits = looks_rounded(got)
    if digits is not None:
        return hint(f"you returned {got:g}, a rounded number ({runner.plural(digits, 'significant digit')}), "
                    f"and a rounded number is not exact. {exact}")
    return None


def _is_float32(value: float) -> bool:
    return float(np.float32(value)) == value


def float32_hint(got: float | Sequence[float], expected: float | Sequence[float],
                 what: str = "your value") -> Feedback | None:
    """"Did you compute in float32?": a hint when the last call's floating-point inputs were all float64, its
    result held float32 numbers (a float32 tensor or array, or a number that is exactly a float32, which a
    float64 result almost never is) and
    ``got`` is within float32 rounding (:data:`FLOAT32_RTOL`, relative to the largest expected value) of
    ``expected``, number by number; else ``None``. Call it only for a value already found wrong."""
    session = runner.current_session()
    if session is None or not session.float64_inputs:
        return None
    gots = [got] if isinstance(got, numbers.Real) else list(got)
    wants = [expected] if isinstance(expected, numbers.Real) else list(expected)
    if not gots or len(gots) != len(wants):
        return None
    if not (session.low_precision or any(_is_float32(g) for g in gots)):
        return None
    scale = max(abs(w) for w in wants)
    if not all(abs(g - w) <= FLOAT32_RTOL * scale for g, w in zip(gots, wants, strict=True)):
        return None
    return hint(f"{what} is off by float32 rounding only: the inputs are float64, but your function computes in "
                "float32 somewhere, which keeps only about 7 significant digits, fewer than the checker asks for. "
                "torch.tensor() of Python numbers, torch.zeros/ones/arange without dtype=, .float() and np.float32 "
                "all give float32.", "Keep float64 throughout: give dtype=torch.float64 to new tensors (or build "
                "them from the inputs, as in torch.zeros_like(x)), and do not call .float().")
