"""Run every benchmark and print one table: ``python -m benchmarks [--only NAME,...] [--csv OUT]``.

Each ``benchmarks/bench_*.py`` module exposes ``run(**kwargs) -> list[dict]``; every row holds a
figure and the baseline it was measured against in the same process (absolute times on
shared machines are context, the ratios are the result). ``--quick`` passes ``quick=True`` to
modules whose ``run`` accepts it.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import pkgutil
import platform
import sys
import time
from pathlib import Path


def _modules(only: list[str] | None) -> list[str]:
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; have {names}")
        names = [n for n in names if n in wanted]
    return names


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="pft benchmark suite")
    p.add_argument("--only", help="comma-separated benchmark names (e.g. background,diagrams)")
    p.add_argument("--csv", default="benchmarks.csv", help="where to write every row (default benchmarks.csv)")
    p.add_argument("--quick", action="store_true", help="smaller sizes where a benchmark supports it")
    a = p.parse_args(argv)
    import numpy
    import torch

    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
          f"numpy {numpy.__version__}, torch {torch.__version__}, cuda {torch.cuda.is_available()}")
    records = []
    for name in _modules(a.only.split(",") if a.only else None):
        mod = importlib.import_module(f"benchmarks.{name}")
        kwargs = {"quick": True} if a.quick and "quick" in inspect.signature(mod.run).parameters else {}
        t0 = time.perf_counter()
        rows = mod.run(**kwargs)
        took = time.perf_counter() - t0
        print(f"\n== {name}  ({took:.0f} s)")
        if not rows:
            continue
        keys = list(dict.fromkeys(k for r in rows for k in r))
        width = {k: max(len(k), *(len(_fmt(r.get(k, ""))) for r in rows)) for k in keys}
        print("  ".join(f"{k:<{width[k]}}" for k in keys))
        for r in rows:
            print("  ".join(f"{_fmt(r.get(k, '')):<{width[k]}}" for k in keys))
            records.append({"module": name, **r})
        sys.stdout.flush()
    if records:
        keys = list(dict.fromkeys(k for r in records for k in r))
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(records)
        print(f"\ncsv: {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
