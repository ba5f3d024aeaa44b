"""The assertion every checker test makes about a wrong answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from mixlib.exercises import ExerciseFailed, Feedback


def assert_rejected(check: Callable[..., Feedback], answer: object, hint: str) -> None:
    """``check`` rejects ``answer`` with a hint containing ``hint`` (a substring or a regular
    expression), never a traceback, and raises ``ExerciseFailed`` when called with ``strict=True``."""
    feedback = check(answer)
    assert isinstance(feedback, Feedback) and not feedback.passed
    assert feedback.message and "Traceback" not in feedback.message
    assert hint in feedback.message or re.search(hint, feedback.message), feedback.message
    assert str(feedback).startswith("❌")
    with pytest.raises(ExerciseFailed):
        check(answer, strict=True)
