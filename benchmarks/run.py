"""Run the platform's benchmarks and say whether each met its targets.

Usage: ``python -m benchmarks.run [NAME|all] [options of that one benchmark]`` (default ``all``).
Exits non-zero when any benchmark misses a target or fails to run, so ``make bench`` can gate on it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

# Module per benchmark, imported only when selected: one benchmark's dependencies cannot stop another.
BENCHMARKS = {
    "fraud": "benchmarks.fraud",
    "router": "benchmarks.router",
    "maintenance": "benchmarks.maintenance",
    "opstore": "benchmarks.opstore",
    "feedback": "benchmarks.feedback",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", nargs="?", choices=[*BENCHMARKS, "all"], default="all")
    args, options = parser.parse_known_args(argv)
    selected = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    if options and len(selected) > 1:
        parser.error(f"options {options} apply to one benchmark: name it")

    outcomes = {}
    for name in selected:
        print(f"=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            code = importlib.import_module(BENCHMARKS[name]).main(options)
            outcomes[name] = ("targets met" if code == 0 else "targets MISSED", code == 0)
        except Exception as exc:  # report it and run the remaining benchmarks
            traceback.print_exc()
            outcomes[name] = (f"FAILED to run: {type(exc).__name__}: {exc}", False)
        print(f"=== {name}: {time.perf_counter() - started:.0f} s ===\n", flush=True)

    print("Summary")
    for name, (verdict, _) in outcomes.items():
        print(f"  {name:<8} {verdict}")
    return 0 if all(met for _, met in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
