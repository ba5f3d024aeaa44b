"""Checkers for the exercises at the end of each chapter.

A checker takes the learner's function, runs it on cases whose answers it knows and
returns a :class:`Feedback`: a tick when everything matches, otherwise a hint that names
the likely mistake. It never lets the learner's exception escape as a bare traceback.
Pass ``strict=True`` to raise instead of returning a failed feedback (the book's own
solutions do, so a wrong solution breaks the build).

One module per chapter: ``from mixlib.exercises import ch01``.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


class ExerciseFailed(AssertionError):
    """Raised by a checker called with ``strict=True`` when the answer is wrong."""


@dataclass(frozen=True)
class Feedback:
    """The verdict of a checker: ``passed`` and a message for the learner.

    It is truthy exactly when the answer passed, so ``assert check(...)`` works.
    """

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return ("✅ Correct! " if self.passed else "❌ Not yet. ") + self.message

    def __repr__(self) -> str:
        return str(self)


def passed(message: str) -> Feedback:
    """A passing verdict."""
    return Feedback(True, message)


def hint(message: str) -> Feedback:
    """A failing verdict carrying a hint."""
    return Feedback(False, message)


def finish(feedback: Feedback, strict: bool) -> Feedback:
    """Return ``feedback``, or raise :class:`ExerciseFailed` if it failed and ``strict`` is set."""
    if strict and not feedback.passed:
        raise ExerciseFailed(str(feedback))
    return feedback


def check_callable(answer: object, name: str) -> Feedback | None:
    """A failing verdict if ``answer`` is not a function, else ``None``."""
    if not callable(answer):
        return hint(f"pass your function itself, `{name}`, not {type(answer).__name__} "
                    f"(write `check(my_function)`, not `check(my_function())`).")
    return None


def call(answer: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Feedback | None]:
    """Call the learner's function; turn an exception into a hint naming it and where it happened."""
    try:
        return answer(*args, **kwargs), None
    except NotImplementedError:
        return None, hint("your function still raises NotImplementedError: replace the `...` stub "
                          "with your code.")
    except Exception as exc:  # the learner's bug: report it, don't crash the notebook
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
        return None, hint(f"your function raised {type(exc).__name__}: {exc}{where}. "
                          "Fix that first, then call the checker again.")


def as_float(value: Any, what: str) -> tuple[float | None, Feedback | None]:
    """Convert a learner's scalar (float or one-element tensor) to ``float``, or explain why not."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None, hint(f"{what} should be a single number, but you returned a tensor of shape "
                              f"{tuple(value.shape)}. Did you forget to average?")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, hint(f"{what} should be a number, but you returned {type(value).__name__}.")
    if not math.isfinite(value):
        return None, hint(f"{what} came out as {value}; look for a division by zero or log(0).")
    return float(value), None


def diagnose(got: float, expected: float, wrong: Mapping[str, float], *, rtol: float = 1e-4,
             atol: float = 1e-6) -> Feedback | None:
    """Compare ``got`` with ``expected``; if it is off, say which known mistake it matches.

    ``wrong`` maps a hint to the value a typical wrong answer produces on the same case.
    Returns ``None`` when ``got`` is right.
    """
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return None
    for message, value in wrong.items():
        if math.isclose(got, value, rel_tol=rtol, abs_tol=atol):
            return hint(message)
    return hint(f"you returned {got:.6g} where {expected:.6g} was expected.")
