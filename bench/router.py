"""Router: messages/s through router.route over the labelled dataset (evals/router/router.jsonl)
repeated for --seconds, with p50/p99 microseconds per message; baseline: casefolding and
tokenising each message with one precompiled regex, the least any router does, measured in the
same run.

    .venv/bin/python -m bench.router [--seconds 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable

from router import route
from router.evaluate import DEFAULT_CASES, load_cases

_WORDS = re.compile(r"\w+|[^\w\s]")


def _run(call: Callable[[int], object], count: int, seconds: float) -> tuple[float, list[float]]:
    """Calls call(i) for i cycling over range(count) for `seconds`; returns calls/s and the
    microseconds of each call."""
    took: list[float] = []
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    i = 0
    while clock() < deadline:
        before = clock()
        call(i % count)
        took.append((clock() - before) * 1e6)
        i += 1
    return i / (clock() - started), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    cases = load_cases(DEFAULT_CASES)
    texts = [case.text for case in cases]
    homes = [list(case.devices) for case in cases]  # as callers hold them: lists
    pending = [case.pending_action for case in cases]

    def routed(i: int) -> object:
        return route(texts[i], homes[i], pending_action=pending[i])

    def tokenised(i: int) -> object:
        return _WORDS.findall(texts[i].casefold())

    for i in range(len(cases)):  # compile the grammar and index each household once
        routed(i)
    rate, took = _run(routed, len(cases), args.seconds)
    base_rate, _ = _run(tokenised, len(cases), args.seconds)
    p50, p99 = (statistics.quantiles(took, n=100)[k] for k in (49, 98))
    print(
        f"router: {rate:,.0f} messages/s, p50 {p50:.1f} us, p99 {p99:.1f} us per message "
        f"(baseline: casefold and tokenise {base_rate:,.0f} messages/s, "
        f"ratio: {rate / base_rate:.3f}x) over {len(cases)} labelled messages"
    )


if __name__ == "__main__":
    main()
