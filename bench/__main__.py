"""Run every bench/bench_*.py (or the ones named: `python -m bench emulator writer`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    wanted = argv or names
    unknown = [n for n in wanted if n not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    status = 0
    for name in wanted:
        print(f"== bench_{name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        saved = sys.argv
        sys.argv = [f"bench/bench_{name}.py"]  # each benchmark parses its own (empty) arguments
        try:
            result = module.main()
        finally:
            sys.argv = saved
        status = status or (result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
