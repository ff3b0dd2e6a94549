"""Router: messages/s through router.route over the labelled dataset (evals/router/router.jsonl)
repeated for --seconds, with p50/p99 microseconds per message; baseline: casefolding and
tokenising each message with one precompiled regex, the least any router does, measured in the
same run.

Then the worst case at the chat size limit (service/routes/chat.py MAX_CHARS): for each family
of hostile messages (one huge word, thousands of unknown words, repeated names, windows,
punctuation, unicode, control characters...) the slowest message's CPU time (the median of
--repeats runs; CPU, not wall, time, so other work on a shared machine counts less) and the
largest peak of memory allocated while routing one (tracemalloc), each against a typical
question; then --examples messages of the router fuzz test's strategy (tests/routing.py), and
the slowest of them. The run fails (exit 1) when a worst case passes --max-ms or --max-kib.

    .venv/bin/python -m bench.router [--seconds 2] [--examples 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import statistics
import string
import sys
import time
import tracemalloc
from collections.abc import Callable

from hypothesis import HealthCheck, given, seed, settings

from evals.router_eval import DEFAULT_CASES, load_cases
from router import route
from service.routes.chat import MAX_CHARS
from tests.routing import HOUSEHOLD, MESSAGES, check

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
    parser.add_argument("--repeats", type=int, default=5, help="runs of each hostile message")
    parser.add_argument("--examples", type=int, default=3000, help="fuzz examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-ms", type=float, default=50.0)
    parser.add_argument("--max-kib", type=float, default=4096.0)
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
    family_ms, family_kib = _worst_case(args.repeats)
    fuzz_ms, fuzz_kib = _fuzz(args.examples, args.seed, args.repeats)
    worst_ms, worst_kib = max(family_ms, fuzz_ms), max(family_kib, fuzz_kib)
    if worst_ms > args.max_ms or worst_kib > args.max_kib:
        sys.exit(
            f"router worst case {worst_ms:.1f} ms, {worst_kib:.0f} KiB per message is over "
            f"the bound of {args.max_ms} ms, {args.max_kib} KiB"
        )
    print(f"router_worst_case_bound: ok (at most {args.max_ms} ms, {args.max_kib} KiB)")


TYPICAL = "how much did the dishwasher use yesterday?"


def _fill(unit: str, size: int = MAX_CHARS) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _words(rng: random.Random, alphabet: str, shortest: int, longest: int) -> str:
    words: list[str] = []
    size = 0
    while size < MAX_CHARS:
        words.append("".join(rng.choices(alphabet, k=rng.randint(shortest, longest))))
        size += len(words[-1]) + 1
    return " ".join(words)[:MAX_CHARS]


def _misspelt(rng: random.Random) -> str:
    """Distinct misspellings of names, each a lookup of its own."""
    names = ("dishwasher", "washingmachine", "heatpump", "downstairsheater", "homebattery")
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < MAX_CHARS:
        word = list(rng.choice(names))
        word[rng.randrange(len(word))] = rng.choice(string.ascii_lowercase)
        words.append("".join(word))
    return " ".join(words)[:MAX_CHARS]


def _families() -> dict[str, Callable[[random.Random], str]]:
    """Hostile messages of MAX_CHARS characters, by family; each drawn from a seeded rng."""
    letters = string.ascii_lowercase
    return {
        "one_repeated_letter": lambda rng: "how much " + "a" * (MAX_CHARS - 9),
        "one_random_word": lambda rng: "".join(rng.choices(letters, k=MAX_CHARS)),
        "unknown_words": lambda rng: _words(rng, letters, 6, 12),
        "short_words": lambda rng: _words(rng, letters, 1, 3),
        "misspelt_names": _misspelt,
        "device_names": lambda rng: _fill("the dishwasher and heat pump, washing machine "),
        "plural_split_names": lambda rng: _fill("heaters pumps dish washer "),
        "window_phrases": lambda rng: _fill("last 3 days since monday from nov 1 to nov 10 "),
        "numbers": lambda rng: _fill("1 2 "),
        "punctuation": lambda rng: _fill("?!.,"),
        "hyphenated_word": lambda rng: _fill("a-"),
        "clauses": lambda rng: _fill("turn the dryer off and the oven on, "),
        "unicode_letters": lambda rng: _words(rng, "éßøåçñ漢字ひらがなабвгдİﬁ", 3, 12),
        "combining_marks": lambda rng: _fill("a\u0301"),
        "emoji": lambda rng: _fill("🔥⚡"),
        "control_characters": lambda rng: _fill("\x00\x01 "),
        "lexicon_words": lambda rng: " ".join(rng.choices(_LEXICON, k=MAX_CHARS // 4))[:MAX_CHARS],
    }


_LEXICON = sorted({w for case in load_cases(DEFAULT_CASES) for w in case.text.split()})


def _cost(text: str, repeats: int) -> tuple[float, float]:
    """Milliseconds to route `text` (the median of `repeats` runs) and KiB allocated at peak."""
    took: list[float] = []
    for _ in range(repeats):
        started = time.process_time()
        route(text, HOUSEHOLD, pending_action=False)
        took.append((time.process_time() - started) * 1e3)
    tracemalloc.start()
    route(text, HOUSEHOLD, pending_action=False)
    peak = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()
    return statistics.median(took), peak


def _worst_case(repeats: int) -> tuple[float, float]:
    route(TYPICAL, HOUSEHOLD, pending_action=False)  # the household's index, built once
    base_ms, base_kib = _cost(TYPICAL, 200)
    worst_ms, worst_kib = 0.0, 0.0
    slowest = largest = ""
    for family, make in _families().items():
        rng = random.Random(family)
        ms, kib = map(max, zip(*(_cost(make(rng), repeats) for _ in range(3)), strict=True))
        print(f"router_adversarial[{family}]: {ms:.2f} ms, {kib:.0f} KiB per message")
        if ms > worst_ms:
            worst_ms, slowest = ms, family
        if kib > worst_kib:
            worst_kib, largest = kib, family
    print(
        f"router_worst_case_time: {worst_ms:.2f} ms (baseline: {base_ms:.3f} ms for a typical "
        f"question, ratio: {worst_ms / base_ms:.0f}) at {MAX_CHARS} characters, {slowest}"
    )
    print(
        f"router_worst_case_memory: {worst_kib:.0f} KiB (baseline: {base_kib:.1f} KiB for a "
        f"typical question, ratio: {worst_kib / base_kib:.0f}) at {MAX_CHARS} characters, "
        f"{largest}"
    )
    return worst_ms, worst_kib


def _fuzz(examples: int, chosen_seed: int, repeats: int) -> tuple[float, float]:
    """Route `examples` messages of the fuzz test's strategy once each; time the 20 slowest
    again as the families are, and return the slowest's milliseconds and the largest peak of
    memory in KiB."""
    took: list[tuple[float, str]] = []

    @seed(chosen_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(MESSAGES)
    def routed(text: str) -> None:
        gc.disable()  # a full collection walks hypothesis's heap too: up to 100 ms, not ours
        started = time.process_time()
        route(text, HOUSEHOLD, pending_action=False)
        took.append(((time.process_time() - started) * 1e3, text))
        gc.enable()
        check(text, pending=False)

    routed()
    typical = statistics.median(ms for ms, _ in took)
    slowest = sorted(took, key=lambda example: -example[0])[:20]
    costs = [(*_cost(text, repeats), len(text)) for _, text in slowest]
    worst, _, size = max(costs)
    worst_kib = max(kib for _, kib, _ in costs)
    print(
        f"router_fuzz_worst_time: {worst:.2f} ms (baseline: {typical:.3f} ms, the median "
        f"example, ratio: {worst / typical:.0f}) over {len(took)} examples, seed "
        f"{chosen_seed}, the slowest {size} characters (once: {slowest[0][0]:.2f} ms)"
    )
    return worst, worst_kib


if __name__ == "__main__":
    main()
