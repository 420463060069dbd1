"""`python -m bench <name>`: run one benchmark (see bench/README.md)."""

from __future__ import annotations

import argparse

from bench import ingest, stats


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="benchmark", required=True)
    stats.add_arguments(commands.add_parser("stats", help=stats.__doc__))
    ingest.add_arguments(commands.add_parser("ingest", help=ingest.__doc__))
    args = parser.parse_args()
    if args.benchmark == "stats":
        stats.run(args)
    elif args.benchmark == "ingest":
        ingest.run(args)


if __name__ == "__main__":
    main()
