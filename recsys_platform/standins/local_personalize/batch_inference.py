"""Batch inference: JSON lines of `{"userId": ...}` in, Personalize's output lines out.

Output goes to `<destination>/<input file name>.out`, one line per input line:
`{"input": {...}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}`, or, for a
line that cannot be answered, `"output": null` and the reason in `"error"`.

With a filter (CreateBatchInferenceJob `filterArn`), each line is filtered as a GetRecommendations
request for its user would be, with the line's own `filterValues` object for the filter's parameters
(`{"userId": "5", "filterValues": {"GENRES": "\\"horror\\",\\"comedy\\""}}`, as the guide's
"Filtering batch recommendations" shows). Batch recommendations come from the trained model: events
recorded after training are not folded in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from recsys_platform.modelling.recommenders.base import Recommender
from recsys_platform.standins.local_personalize.errors import ServiceError
from recsys_platform.standins.local_personalize.ranking import ranked

_CHECK_EVERY = 1000  # lines between checks for a stop request

AllowedFor = Callable[[str, dict | None], Callable[[str], bool]]


def _answer(model: Recommender, line: str, num_results: int, allowed_for: AllowedFor | None) -> dict:
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as error:
        return {"input": line, "output": None, "error": f"not a JSON object: {error}"}
    if not isinstance(request, dict) or not isinstance(request.get("userId"), str) or not request["userId"]:
        return {"input": request, "output": None, "error": "each input line needs a non-empty string userId"}
    allowed = None
    if allowed_for is not None:
        values = request.get("filterValues")
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            return {"input": request, "output": None, "error": "filterValues must map parameter names to strings"}
        try:
            allowed = allowed_for(request["userId"], values)
        except ServiceError as error:
            return {"input": request, "output": None, "error": error.message}
    recommendations = ranked(model, request["userId"], num_results, None, allowed)
    return {
        "input": request,
        "output": {
            "recommendedItems": [item for item, _ in recommendations],
            "scores": [round(float(score), 7) for _, score in recommendations],
        },
        "error": None,
    }


def run_batch_inference(
    model: Recommender,
    source: Path,
    destination: Path,
    num_results: int,
    check: Callable[[], None],
    allowed_for: AllowedFor | None = None,
) -> Path:
    """`destination` is a folder inside the lake (resolved); the output never follows a link out."""
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / f"{source.name}.out"
    temp = destination / f".{source.name}.out.tmp"
    temp.unlink(missing_ok=True)
    # O_EXCL | O_NOFOLLOW: a link planted at the temporary name is never written through
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with source.open("r", encoding="utf-8") as lines, os.fdopen(descriptor, "w", encoding="utf-8") as out:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            answer = _answer(model, line.strip(), num_results, allowed_for)
            out.write(json.dumps(answer, separators=(",", ":")) + "\n")
            if number % _CHECK_EVERY == 0:
                check()
    os.replace(temp, target)  # replaces a link at the target name itself, never its target
    return target
