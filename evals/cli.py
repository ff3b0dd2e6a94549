"""`python -m evals`: seed the fixtures into a scratch database, run the datasets, write the
report (report.json, summary.md, chart.png), compare with a baseline, and exit 1 when a
threshold is missed.

It is a command of the checkout, not of the product: `wattwise` never imports evals (whose
extra, httpx, matplotlib and tqdm, a plain install lacks); evals drives the product from
outside, with the settings `wattwise` itself would resolve."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
from tqdm import tqdm

from evals import cases, report
from evals.remote import run_case_remote, seed_remote
from evals.runner import TurnResult, eval_deps, run, seed, settings_for
from evals.scratch import scratch_database
from service import logs
from service.cli import resolve_settings
from service.deps import open_pool
from service.settings import ConfigError, Settings

THRESHOLDS = ("routing", "numeric", "faithfulness", "consent", "scoping")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    logs.configure(fmt="text")
    try:
        settings = resolve_settings(needs_secret=True)
    except ConfigError as exc:
        print(f"evals: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(main_async(settings, args))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", type=Path, help="a JSONL file (repeatable)")
    p.add_argument("--provider", choices=["narrator", "openai"], default="narrator")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (--provider openai)")
    p.add_argument(
        "--model", help="model name (--provider openai; priced in WATTWISE_MODEL_PRICES)"
    )
    p.add_argument("--url", help="a running service to evaluate instead of the in-process one")
    p.add_argument("--token", help="with --url: an administrator's bearer token")
    p.add_argument("--out", type=Path, default=Path("eval-report"), help="report directory")
    p.add_argument("--baseline", type=Path, help="a previous report.json to compare with")
    for name in THRESHOLDS:
        p.add_argument(f"--min-{name}", type=float, metavar="PCT", help=f"least {name} score, %%")


async def main_async(settings: Settings, args: argparse.Namespace) -> int:
    chosen = cases.load(args.dataset)
    if args.url:
        results = await _remote(args, chosen)
        return _finish(args, chosen, results, model=None)
    eval_settings = settings_for(
        settings, provider=args.provider, base_url=args.base_url, model=args.model
    )
    assert settings.database_url is not None
    async with scratch_database(settings.database_url, f"wattwise_eval_{os.getpid()}") as dsn:
        pool = await open_pool(eval_settings.model_copy(update={"database_url": dsn}))
        deps = None
        try:
            async with pool.acquire() as conn:
                homes = await seed(conn)
            deps = eval_deps(eval_settings, pool)
            with tqdm(total=len(chosen), unit="case", file=sys.stderr) as bar:
                results = await run(deps, homes, chosen, progress=bar.update)
        finally:
            if deps is not None and deps.model is not None:
                await deps.model.client.close()
            await pool.close()
    return _finish(
        args, chosen, results, model=eval_settings.model if args.provider == "openai" else None
    )


async def _remote(args: argparse.Namespace, chosen: list[cases.Case]) -> list[TurnResult]:
    if not args.token:
        raise SystemExit("evals: --url needs --token (an administrator's)")
    headers = {"Authorization": f"Bearer {args.token}"}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=120) as client:
        remote = await seed_remote(client)
        results: list[TurnResult] = []
        with tqdm(total=len(chosen), unit="case", file=sys.stderr) as bar:
            for case in chosen:
                results += await run_case_remote(remote, case)
                bar.update(1)
    return results


def _finish(
    args: argparse.Namespace,
    chosen: list[cases.Case],
    results: list[TurnResult],
    *,
    model: str | None,
) -> int:
    built = report.build(
        results,
        run={
            "provider": f"service at {args.url}" if args.url else args.provider,
            "model": model,
            "cases": len(chosen),
            "datasets": sorted({c.source for c in chosen}),
        },
    )
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    paths = report.write(built, args.out, baseline)
    print(report.markdown(built, baseline).split("\n## Failures")[0], file=sys.stderr)
    for kind, path in paths.items():
        print(f"{kind}: {path}", file=sys.stderr)
    thresholds = {
        n: getattr(args, f"min_{n}") / 100
        for n in THRESHOLDS
        if getattr(args, f"min_{n}") is not None
    }
    problems = report.missed(built, thresholds)
    for problem in problems:
        print(f"threshold missed: {problem}", file=sys.stderr)
    return 1 if problems else 0
