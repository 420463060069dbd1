"""Every scenario, one after the other, each printing its table: stats, ingest, runtime,
wakeup, e2e, testspeed (with the whole suite). About 25 minutes on 2 idle cores; `--quick`
runs small sizes in a few minutes (9 on 2 cores shared with other work, load ~12).

Each scenario runs with its own defaults (`python -m bench <name> --help`), or with the small
sizes below under `--quick`. One that fails (say, `stats` without PostgreSQL) is reported and
the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass

from bench.harness import machine_line

# The order `all` runs them in (bench/__main__.py lists the same).
SCENARIOS = ("stats", "ingest", "runtime", "wakeup", "e2e", "testspeed")
# Small sizes for --quick. Options a scenario does not have are left out (with a note), so a
# scenario may change its options without breaking `all`.
QUICK: dict[str, list[str]] = {
    "stats": ["--enrollments", "5000", "--runs", "3"],
    "ingest": ["--events", "200", "--warmup", "20", "--batch-size", "50"],
    "runtime": ["--contacts", "100", "--warmup", "5"],
    "wakeup": ["--enrollments", "1000", "--warmup", "50"],
    "e2e": ["--events", "100", "--calibrate", "60", "--warmup", "5"],
    "testspeed": ["--runs", "1"],
}
# What the full run adds to the defaults: the whole suite's wall time.
FULL: dict[str, list[str]] = {"testspeed": ["--suite"]}


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "failed: ...", "missing"
    seconds: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SCENARIOS,
        help="leave a scenario out (repeatable)",
    )
    parser.add_argument(
        "--no-suite", action="store_true", help="testspeed without the whole suite's run"
    )


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(machine_line(load))
    outcomes = [
        run_one(name, scenario_arguments(name, quick=args.quick, suite=not args.no_suite))
        for name in SCENARIOS
        if name not in args.skip
    ]
    print("\n== summary")
    for outcome in outcomes:
        print(f"  {outcome.name:10} {outcome.seconds:7.1f} s  {outcome.status}")
    print(f"  {'total':10} {sum(o.seconds for o in outcomes):7.1f} s")
    if any(outcome.status != "ok" for outcome in outcomes):
        sys.exit(1)


def scenario_arguments(name: str, *, quick: bool, suite: bool) -> list[str]:
    if quick:
        return list(QUICK.get(name, []))
    arguments = list(FULL.get(name, []))
    if name == "testspeed" and not suite:
        arguments.remove("--suite")
    return arguments


def run_one(name: str, arguments: list[str]) -> Outcome:
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"bench.{name}":
            raise
        print(f"\n== {name}: missing (no bench/{name}.py)", flush=True)
        return Outcome(name, "missing")
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}")
    module.add_arguments(parser)
    args, unknown = parser.parse_known_args(arguments)
    used = [a for a in arguments if a not in unknown]
    print(f"\n== {name}: python -m bench {' '.join([name, *used])}", flush=True)
    if unknown:
        print(f"   (options it does not have, left out: {' '.join(unknown)})")
    began = time.perf_counter()
    try:
        module.run(args)
    except Exception as err:  # one scenario's failure must not stop the others
        traceback.print_exc()
        return Outcome(name, f"failed: {type(err).__name__}: {err}", time.perf_counter() - began)
    except SystemExit as err:  # a scenario that exits with an error code
        if err.code not in (0, None):
            return Outcome(name, f"failed: exit {err.code}", time.perf_counter() - began)
    sys.stdout.flush()
    return Outcome(name, "ok", time.perf_counter() - began)
