"""The assertions every checker test makes about a reference solution and a wrong answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from mixlib.exercises import ExerciseFailed, Feedback


def assert_rejected(check: Callable[..., Feedback], answer: object, hint: str) -> Feedback:
    """``check`` rejects ``answer`` with a hint containing ``hint`` (a substring or a regular
    expression), never a traceback and never a bare expected value, labelled in words beside the
    emoji, and raises ``ExerciseFailed`` when called with ``strict=True``."""
    feedback = check(answer)
    assert isinstance(feedback, Feedback) and not feedback.passed
    assert feedback.message and "Traceback" not in feedback.message
    assert "was expected" not in feedback.message, feedback.message
    assert hint in feedback.message or re.search(hint, feedback.message), feedback.message
    text = str(feedback)
    assert text.startswith("❌ Not yet — ") or text.startswith("❌ Not attempted yet: "), text
    assert feedback.message.rstrip().endswith((".", "?", ")", "…")), feedback.message
    with pytest.raises(ExerciseFailed):
        check(answer, strict=True)
    return feedback


def assert_accepted(check: Callable[..., Feedback], answer: object) -> Feedback:
    """``check`` accepts ``answer``, with a "✅ Correct —" label, also with ``strict=True``."""
    feedback = check(answer)
    assert isinstance(feedback, Feedback) and feedback.passed, str(feedback)
    assert str(feedback).startswith("✅ Correct — ")
    assert check(answer, strict=True).passed
    return feedback
