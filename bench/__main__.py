"""`python -m bench [name ...]`: run the benchmarks (all by default) and print their tables."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = [
    "bench_rest", "bench_kb", "bench_channels", "bench_work_orders", "bench_wechat", "bench_email",
    "bench_studio",
    "bench_inbox", "bench_logins", "bench_voice", "bench_understanding",
]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== {name}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        started = time.perf_counter()
        module.main()
        print(f"=== {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
