"""The assertions every checker test makes about a reference solution and a wrong answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from mixlib.exercises import ExerciseFailed, Feedback, hint_stage

#: The hint stage that names the mistake (1 is the nudge, 3 adds the formula).
SPECIFIC = 2


def _matches(hint: str, text: str) -> bool:
    return hint in text or re.search(hint, text) is not None


def assert_rejected(check: Callable[..., Feedback], answer: object, hint: str) -> Feedback:
    """``check`` rejects ``answer`` with a hint containing ``hint`` (a substring or a regular
    expression), never a traceback and never a bare expected value, labelled in words beside the
    emoji, and raises ``ExerciseFailed`` when called with ``strict=True``.

    A wrong answer is judged at the stage that names the mistake (the second wrong answer in a
    kernel): ``hint`` must be in that stage's message, and in the full hint that ``strict=True``
    raises (which adds the formula, if the hint has one).
    """
    with hint_stage(SPECIFIC):
        feedback = check(answer)
    assert isinstance(feedback, Feedback) and not feedback.passed
    assert feedback.message and "Traceback" not in feedback.message
    assert "was expected" not in feedback.message, feedback.message
    assert _matches(hint, feedback.message), feedback.message
    text = str(feedback)
    assert text.startswith("❌ Not yet — ") or text.startswith("⬜ Not attempted yet: "), text
    assert feedback.message.rstrip().endswith((".", "?", ")", "…")), feedback.message
    with pytest.raises(ExerciseFailed) as raised:
        check(answer, strict=True)
    assert _matches(hint, str(raised.value)), str(raised.value)
    if feedback.formula:
        assert feedback.formula in str(raised.value)
    return feedback


def assert_accepted(check: Callable[..., Feedback], answer: object) -> Feedback:
    """``check`` accepts ``answer``, with a "✅ Correct —" label, also with ``strict=True``."""
    feedback = check(answer)
    assert isinstance(feedback, Feedback) and feedback.passed, str(feedback)
    assert str(feedback).startswith("✅ Correct — ")
    assert check(answer, strict=True).passed
    return feedback


def assert_shortcut(check: Callable[..., Feedback], answer: object, name: str) -> Feedback:
    """``check`` answers ``answer``, which calls the library function ``name`` (its dotted name), with the
    library-shortcut verdict: not passed, never ✅, naming the function, the same at every hint stage,
    and ``ExerciseFailed`` with ``strict=True``."""
    with hint_stage(1):
        feedback = check(answer)
    assert isinstance(feedback, Feedback) and not feedback.passed, str(feedback)
    assert feedback.shortcut == name, str(feedback)
    assert "✅" not in str(feedback) and str(feedback).startswith("❌ Not yet — you called "), str(feedback)
    assert f"`{name}`" in feedback.message and feedback.stage == 0
    assert "was expected" not in feedback.message
    with pytest.raises(ExerciseFailed, match="you called"):
        check(answer, strict=True)
    return feedback


def specific_hints() -> Iterator[None]:
    """For an autouse fixture: every wrong answer in the test gets the stage that names the mistake.

    Write ``_specific = pytest.fixture(autouse=True)(specific_hints)`` in a test module.
    """
    with hint_stage(SPECIFIC):
        yield
