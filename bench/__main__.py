"""`python -m bench <name>`: run one benchmark, or `all` of them (see bench/README.md)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

# Every scenario is a module `bench.<name>` with `add_arguments(parser)` and `run(args)`.
from bench.all import SCENARIOS


def scenario_module(name: str) -> ModuleType | None:
    """`bench.<name>`, or None while that scenario is not written yet."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"bench.{name}":
            raise  # the module exists but something it imports does not: say so
        return None


def summary(module: ModuleType) -> str:
    """The first paragraph of a module's docstring, for `--help`."""
    text = (module.__doc__ or "").strip().split("\n\n", 1)[0]
    return " ".join(text.split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="SCENARIO")
    for name in (*SCENARIOS, "all"):
        module = scenario_module(name)
        if module is None:
            commands.add_parser(name, help=f"(not available: bench/{name}.py is missing)")
            continue
        module.add_arguments(commands.add_parser(name, help=summary(module)))
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    module = scenario_module(args.benchmark)
    if module is None:
        parser.error(f"scenario {args.benchmark!r} is not available: bench/{args.benchmark}.py")
    module.run(args)


if __name__ == "__main__":
    main()
