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


def check(exercise: str, given: Any, *inputs: Any, rel: float = 0.01) -> bool:
    """Print whether ``given`` answers ``exercise`` (numbers within ``rel``), with a hint when it does not.

    ``inputs`` are what the answer depends on when it is not fixed (e.g. the confusion matrix of your model)."""
    if exercise not in ANSWERS:
        raise SeglabError(f"no answer check for exercise {exercise!r}; checks exist for {', '.join(sorted(ANSWERS))}")
    compute, hint = ANSWERS[exercise]
    right = _same(given, compute(*inputs), rel)
    print(f"exercise {exercise}: " + ("right." if right else f"not yet. Hint: {hint}"))
    return right


# Answers, by notebook. Each computes what the exercise asks from the library itself.
# --- 00 ---------------------------------------------------------------------------------------------------------
# --- 01 ---------------------------------------------------------------------------------------------------------
# --- 02 ---------------------------------------------------------------------------------------------------------
# --- 03 ---------------------------------------------------------------------------------------------------------
def _meta_model(name: str, **options: Any) -> Any:
    """Model ``name`` with ``options`` and Cityscapes' 19 classes, on the meta device (shapes only, no memory)."""
    import torch

    from seglab.models import build_model

    with torch.device("meta"):
        return build_model(name, 19, **options)


def _parameters(name: str, **options: Any) -> int:
    from seglab.models import count_parameters

    return count_parameters(_meta_model(name, **options))


@answer("03.1", hint="per level, the 2x2 transposed conv (4*c_in*c_out weights + c_out biases) becomes a 1x1 conv "
                     "(c_in*c_out) and a BatchNorm (2*c_out); count_parameters(MyUNet(19)) after the change")
def unet_bilinear_parameters() -> int:
    return _parameters("unet", upsample="bilinear")


@answer("03.2", hint="only the first 3x3 conv of each decoder block changes, from 2c to c input channels: "
                     "9*c*c fewer weights per level (c = 128, 64, 32, 16)")
def unet_skip_weights() -> int:
    first_convs = [block[0][0] for block in _meta_model("unet").decoder.blocks]
    return sum(conv.weight[:, : conv.in_channels // 2].numel() for conv in first_convs)  # the weights on the skip


# --- 04 ---------------------------------------------------------------------------------------------------------
# --- 05 ---------------------------------------------------------------------------------------------------------
# --- 06 ---------------------------------------------------------------------------------------------------------
# --- 07 ---------------------------------------------------------------------------------------------------------
# --- 08 ---------------------------------------------------------------------------------------------------------
@answer("08.1", hint="normalise each row of M by its sum, zero the diagonal, and divmod the argmax by K")
def _most_confused_pair(matrix) -> list[int]:
    import torch

    m = torch.as_tensor(matrix).double()
    rates = (m / m.sum(dim=1, keepdim=True).clamp(min=1)).fill_diagonal_(0)
    return list(divmod(int(rates.argmax()), m.shape[0]))


# --- 09 ---------------------------------------------------------------------------------------------------------
# --- 10 ---------------------------------------------------------------------------------------------------------
# --- 11 ---------------------------------------------------------------------------------------------------------
# --- 12 ---------------------------------------------------------------------------------------------------------
