"""Diagram enumeration: time for all connected vacuum diagrams of φ⁴ (1-6 vertices) and φ³
(2-10 vertices) with exact symmetry factors, and the ratio against a brute-force Wick enumerator
measured in the same run.

Run: ``python -m benchmarks.bench_diagrams``. ``run()`` returns the rows for a later suite.

The brute force enumerates every pairing of the half-edges ((2n-1)!! of them), merges
pairings that draw the same labelled multigraph, groups those by canonical form, and gets each
|Aut| by orbit counting (|Aut| = Π k!^m m! / number of pairings drawing the class). It runs at
growing sizes while the projected time of the next size stays under ``brute_budget_s``.

Counts are checked against OEIS A085549 (φ⁴) and A005967 (φ³).
"""

from __future__ import annotations

import time
from collections import Counter
from fractions import Fraction
from math import factorial

from pft.symbolic import Diagram, vacuum_diagrams

A085549 = {1: 1, 2: 2, 3: 4, 4: 10, 5: 28, 6: 97}  # φ⁴ connected vacuum, by vertices
A005967 = {2: 2, 4: 5, 6: 17, 8: 71, 10: 388}  # φ³ connected vacuum, by vertices


def _double_factorial(n):
    out = 1
    while n > 1:
        out *= n
        n -= 2
    return out


def brute_force_vacuum(k, v):
    """Connected vacuum diagrams of φ^k with v vertices from all Wick pairings:
    returns {canonical_key: |Aut|}."""
    owner = [i for i in range(v) for _ in range(k)]
    n = len(owner)
    per_graph = Counter()
    free = list(range(n))
    edges = []

    def rec(rest):
        if not rest:
            per_graph[tuple(sorted(edges))] += 1
            return
        a = rest[0]
        for i in range(1, len(rest)):
            b = rest[i]
            ua, ub = owner[a], owner[b]
            edges.append((ua, ub) if ua <= ub else (ub, ua))
            rec(rest[1:i] + rest[i + 1 :])
            edges.pop()

    rec(free)
    group = factorial(k) ** v * factorial(v)
    orbit = Counter()
    for es, count in per_graph.items():
        d = Diagram.from_edges(es)
        if d.is_connected:
            orbit[d.canonical_key] += count
    return {key: group // c for key, c in orbit.items()}


def _timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def run(brute_budget_s: float = 60.0):
    """Rows (dicts): one per (theory, vertices) enumerated, then a total row, then one row per
    brute-force size with its time ratio against the enumeration at the same size."""
    rows = []
    total = 0.0
    timings = {}
    for k, sizes, oeis in ((4, range(1, 7), A085549), (3, range(2, 11, 2), A005967)):
        for v in sizes:
            ds, dt = _timed(vacuum_diagrams, (k,), vertices={k: v})
            s = sum((d.symmetry_factor for d in ds), Fraction(0))
            total += dt
            timings[k, v] = (dt, ds)
            rows.append({"kind": "enumerate", "theory": f"phi{k}", "vertices": v, "count": len(ds),
                         "oeis": oeis[v], "sum_1_over_aut": str(s), "seconds": dt})
    rows.append({"kind": "total", "theory": "phi4<=6, phi3<=10", "seconds": total, "target_s": 10.0})
    for k, sizes in ((4, range(1, 6)), (3, range(2, 12, 2))):
        last = None
        for v in sizes:
            pairings = _double_factorial(k * v - 1)
            if last is not None:
                projected = last[1] * pairings / last[0]
                if projected > brute_budget_s:
                    rows.append({"kind": "brute-skip", "theory": f"phi{k}", "vertices": v,
                                 "pairings": pairings, "projected_s": projected})
                    break
            auts, dt = _timed(brute_force_vacuum, k, v)
            last = (pairings, dt)
            fast_dt, ds = timings.get((k, v)) or _timed(vacuum_diagrams, (k,), vertices={k: v})[::-1]
            agree = auts == {d.canonical_key: d.automorphisms for d in ds}
            rows.append({"kind": "brute", "theory": f"phi{k}", "vertices": v, "pairings": pairings,
                         "seconds": dt, "enumerate_s": fast_dt, "ratio": dt / fast_dt, "agree": agree})
    return rows


def main():
    rows = run()
    print("Connected vacuum diagrams, orderly enumeration with exact |Aut| (this run):")
    print(f"{'theory':>8} {'V':>3} {'count':>6} {'OEIS':>6} {'sum 1/|Aut|':>14} {'seconds':>9}")
    for r in rows:
        if r["kind"] == "enumerate":
            ok = "" if r["count"] == r["oeis"] else "  MISMATCH"
            print(f"{r['theory']:>8} {r['vertices']:>3} {r['count']:>6} {r['oeis']:>6} "
                  f"{r['sum_1_over_aut']:>14} {r['seconds']:>9.3f}{ok}")
        elif r["kind"] == "total":
            print(f"total ({r['theory']}): {r['seconds']:.2f} s (target < {r['target_s']:.0f} s)")
    print()
    print("Brute-force Wick enumerator vs orderly enumeration, same size, same run:")
    print(f"{'theory':>8} {'V':>3} {'pairings':>10} {'brute s':>9} {'orderly s':>10} {'ratio':>9} agree")
    for r in rows:
        if r["kind"] == "brute":
            print(f"{r['theory']:>8} {r['vertices']:>3} {r['pairings']:>10} {r['seconds']:>9.3f} "
                  f"{r['enumerate_s']:>10.4f} {r['ratio']:>8.0f}x {r['agree']}")
        elif r["kind"] == "brute-skip":
            print(f"{r['theory']:>8} {r['vertices']:>3} {r['pairings']:>10}  (projected {r['projected_s']:.0f} s > budget: not run)")


if __name__ == "__main__":
    main()
