"""One-line answer checks for the notebooks' exercises: ``check("03.1", answer)`` says whether an answer is right.

Each right answer is computed here from the library (never typed), so it cannot drift from the code it asks about.
The worked solutions in notebooks/solutions/ call the same checks.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from seglab.errors import SeglabError

ANSWERS: dict[str, tuple[Callable[[], Any], str]] = {}  # exercise id -> (computes the right answer, hint)


def answer(exercise: str, hint: str) -> Callable:
    """Register the function that computes the right answer of ``exercise`` (e.g. "03.1"), with a hint."""
    def register(compute: Callable[[], Any]) -> Callable[[], Any]:
        ANSWERS[exercise] = (compute, hint)
        return compute
    return register


def _same(given: Any, right: Any, rel: float) -> bool:
    if isinstance(right, (list, tuple)):
        return isinstance(given, (list, tuple)) and len(given) == len(right) and all(
            _same(g, r, rel) for g, r in zip(given, right))
    if isinstance(right, float) and isinstance(given, (int, float)):
        return math.isclose(given, right, rel_tol=rel, abs_tol=1e-9)
    return given == right


def check(exercise: str, given: Any, rel: float = 0.01) -> bool:
    """Print whether ``given`` answers ``exercise`` (numbers within ``rel``), with a hint when it does not."""
    if exercise not in ANSWERS:
        raise SeglabError(f"no answer check for exercise {exercise!r}; checks exist for {', '.join(sorted(ANSWERS))}")
    compute, hint = ANSWERS[exercise]
    right = _same(given, compute(), rel)
    print(f"exercise {exercise}: " + ("right." if right else f"not yet. Hint: {hint}"))
    return right


# Answers, by notebook. Each computes what the exercise asks from the library itself.
# --- 00 ---------------------------------------------------------------------------------------------------------
# --- 01 ---------------------------------------------------------------------------------------------------------
# --- 02 ---------------------------------------------------------------------------------------------------------
# --- 03 ---------------------------------------------------------------------------------------------------------
# --- 04 ---------------------------------------------------------------------------------------------------------
# --- 05 ---------------------------------------------------------------------------------------------------------
# --- 06 ---------------------------------------------------------------------------------------------------------
# --- 07 ---------------------------------------------------------------------------------------------------------
# --- 08 ---------------------------------------------------------------------------------------------------------
# --- 09 ---------------------------------------------------------------------------------------------------------
# --- 10 ---------------------------------------------------------------------------------------------------------
# --- 11 ---------------------------------------------------------------------------------------------------------
# --- 12 ---------------------------------------------------------------------------------------------------------
