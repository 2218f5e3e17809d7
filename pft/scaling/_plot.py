"""Figures of a scaling study (matplotlib imported here only, never pyplot)."""

from __future__ import annotations

import numpy as np

from pft._plotting import finish, panels, tidy

__all__ = ["plot_study"]


def plot_study(rows, path=None, *, ax=None):
    """Two panels: excess kurtosis against L/n, and against the leading-order prediction.

    Log–log axes (cells with non-positive values are left out of a log panel); open markers are
    cells whose estimate raised the heavy-tail diagnostic. Theory overlays:
    the leading order ``3V/(nK²)`` and, for scale-invariant activations with ``C_b = 0``, the exact
    ``3[(1 + c/n)^(L−1) − 1]``, one thin line per width.

    ``ax``: one Axes (the first panel is drawn there) or a sequence of Axes (the panels in order,
    as many as it holds; see :func:`pft._plotting.panels`); by default a new two-panel figure.
    The figure is returned and, with ``path``, written there atomically.
    """
    import matplotlib

    fig, (ax1, ax2) = panels(ax, 2, figsize=(12, 5), dpi=120)
    family = lambda r: (r["key"]["activation"], r["key"]["C_W"], r["key"]["C_b"])  # noqa: E731
    acts = sorted({family(r) for r in rows})
    several = len({a[0] for a in acts}) < len(acts)  # the same activation at several (C_W, C_b)
    widths = sorted({r["key"]["width"] for r in rows})
    markers = "osD^v<>ph*"
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ai, act in enumerate(acts):
        col = colors[ai % len(colors)]
        for wi, n in enumerate(widths):
            sel = sorted((r for r in rows if family(r) == act and r["key"]["width"] == n),
                         key=lambda r: r["key"]["depth"])
            if not sel:
                continue
            L = np.array([r["key"]["depth"] for r in sel], dtype=float)
            y = np.array([r["result"]["excess_kurtosis"] for r in sel])
            e = np.array([r["result"]["excess_kurtosis_se"] for r in sel])
            lo = np.array([r["result"]["leading_order"] for r in sel])
            ex = np.array([np.nan if r["result"]["exact"] is None else r["result"]["exact"] for r in sel])
            heavy = np.array([bool(r["result"]["heavy_tail"]) for r in sel])
            ok = y > 0
            label = (f"{act[0]} C_W={act[1]:g} C_b={act[2]:g}" if several else act[0]) + f", n={n}"
            mk = markers[wi % len(markers)]
            for a, xs, keep in ((ax1, L / n, ok), (ax2, lo, ok & (lo > 0))):
                if a is None:
                    continue
                for flag, face in ((False, col), (True, "none")):  # open markers: heavy-tail warning
                    sub = keep & (heavy == flag)
                    if sub.any():
                        a.errorbar(xs[sub], y[sub], yerr=e[sub], fmt=mk, color=col, mfc=face, ms=4, capsize=2,
                                    alpha=0.85, label=None if flag else label)
            ax1.plot(L / n, lo, "-", color=col, lw=0.8, alpha=0.6)
            if np.isfinite(ex).any():
                ax1.plot(L / n, ex, ":", color=col, lw=1.0)
            if np.isfinite(ex).any() and ax2 is not None:
                ax2.plot(lo[lo > 0], ex[lo > 0], ":", color=col, lw=1.0)
    allp = [r["result"]["leading_order"] for r in rows if r["result"]["leading_order"] > 0]
    if allp and ax2 is not None:
        span = np.geomspace(min(allp), max(allp), 50)
        ax2.plot(span, span, "k--", lw=1, label="measured = leading order")
    for a in (ax1, ax2) if ax2 is not None else (ax1,):
        a.set_xscale("log")
        a.set_yscale("log")
        a.grid(True, which="both", alpha=0.3)
    ax1.set_xlabel("depth / width  L/n")
    ax1.set_ylabel("excess kurtosis of the output")
    ax1.set_title("solid: leading order 3V/(nK²); dotted: exact (scale-invariant)")
    if ax2 is not None:
        ax2.set_xlabel("leading-order prediction 3V/(nK²)")
        ax2.set_ylabel("measured excess kurtosis")
        ax2.set_title("data collapse across widths (open: heavy tails)")
        ax2.legend(fontsize=7, ncol=2)
    else:
        ax1.legend(fontsize=7, ncol=2)
    tidy(fig, ax)
    return finish(fig, path)
