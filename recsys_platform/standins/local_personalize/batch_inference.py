"""Batch inference: JSON lines of `{"userId": ...}` in, Personalize's output lines out.

Output goes to `<destination>/<input file name>.out`, one line per input line:
`{"input": {...}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}`, or, for a
line that cannot be answered, `"output": null` and the reason in `"error"`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from recsys_platform.modelling.recommenders.base import Recommender

_CHECK_EVERY = 1000  # lines between checks for a stop request


def _answer(model: Recommender, line: str, num_results: int) -> dict:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as error:
        return {"input": line, "output": None, "error": f"not a JSON object: {error}"}
    if not isinstance(request, dict) or not isinstance(request.get("userId"), str) or not request["userId"]:
        return {"input": request, "output": None, "error": "each input line needs a non-empty string userId"}
    recommendations = model.recommend(request["userId"], num_results)
    return {
        "input": request,
        "output": {
            "recommendedItems": [item for item, _ in recommendations],
            "scores": [round(float(score), 7) for _, score in recommendations],
        },
        "error": None,
    }


def run_batch_inference(
    model: Recommender, source: Path, destination: Path, num_results: int, check: Callable[[], None]
) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / f"{source.name}.out"
    temp = destination / f".{source.name}.out.tmp"
    with source.open("r", encoding="utf-8") as lines, temp.open("w", encoding="utf-8") as out:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            out.write(json.dumps(_answer(model, line.strip(), num_results), separators=(",", ":")) + "\n")
            if number % _CHECK_EVERY == 0:
                check()
    os.replace(temp, target)
    return target
