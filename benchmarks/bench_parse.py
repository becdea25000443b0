"""Time FER2013 CSV parsing: a first load (no cache) and a cached load.

Usage::

    FER_UTILS_CACHE=$(mktemp -d) python benchmarks/bench_parse.py [FILE] [--repeat N]

FILE defaults to ``$FER2013_CSV`` or the standard locations under ``data/``
(:func:`fer_utils.paths.find_data_file`). Point ``FER_UTILS_CACHE`` at a
scratch folder to keep the benchmark's cache out of ``data/interim/cache``.
Prints numbers only; the budget (about 3 s for the full 35,887-row file on two
cores, 0.3 s cached) is checked by a person reading them.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

from fer_utils import paths
from fer_utils.data import read_fer2013


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=None, help="FER2013 CSV (.csv or .csv.gz)")
    parser.add_argument("--repeat", type=int, default=3, help="timed loads of each kind; the best is reported too")
    args = parser.parse_args(argv)

    path = paths.find_data_file(args.file)
    if path is None:
        print("no FER2013 file: pass one, or set $FER2013_CSV", file=sys.stderr)
        return 2
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB on disk)")
    print(
        f"cache: {paths.cache_dir()}  cores: {os.cpu_count()}  load average: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    uncached = []
    for _ in range(args.repeat):
        cpu, start = _cpu_seconds(), time.perf_counter()
        data = read_fer2013(path, use_cache=False)
        uncached.append((time.perf_counter() - start, _cpu_seconds() - cpu))
    print(f"rows: {len(data)}  content md5: {data.content_md5}")
    for wall, cpu in uncached:
        print(
            f"parse (no cache):      wall {wall:6.3f} s  cpu {cpu:6.3f} s  "
            f"({len(data) / wall:,.0f} rows/s; {wall * 35_887 / len(data):.2f} s scaled to 35,887 rows)"
        )

    start = time.perf_counter()
    read_fer2013(path, use_cache=True)
    print(f"first load + cache write: wall {time.perf_counter() - start:6.3f} s")
    for _ in range(args.repeat):
        start = time.perf_counter()
        read_fer2013(path, use_cache=True)
        print(f"cached load:           wall {time.perf_counter() - start:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
