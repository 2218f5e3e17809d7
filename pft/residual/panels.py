"""Several panels under the one plot convention of :mod:`pft._plotting` (package-internal: the
residual results and :class:`pft.interop.EvalResult` draw with it).

The residual results draw two or three panels side by side. ``plot(path=None, *, ax=None)``
draws them on a new pyplot-free figure; given ``ax``, it draws on the caller's axes instead: one
Axes receives the first (main) panel only, a sequence of Axes receives the panels in order (as
many as it holds).
"""

from __future__ import annotations

from typing import Any

from pft._plotting import new_axes, new_figure

__all__ = ["panels", "tidy"]


def panels(ax: Any, n: int, *, figsize: tuple[float, float], dpi: float = 110, nrows: int = 1) -> tuple[Any, list]:
    """``(figure, axes)``: ``n`` axes of a new figure (in ``nrows`` rows), or the caller's ``ax``
    (one Axes: ``[ax, None, ...]``; a sequence: its axes, padded with None) on the caller's
    figure. A None entry is a panel not drawn."""
    if ax is None:
        fig = new_figure(figsize)
        fig.set_dpi(dpi)
        return fig, list(fig.subplots(nrows, -(-n // nrows), squeeze=False).ravel())[:n]
    if isinstance(ax, (list, tuple)) or (hasattr(ax, "__len__") and hasattr(ax, "__getitem__") and not hasattr(ax, "plot")):
        given = list(ax)
        if not given:
            from pft.errors import InputError

            raise InputError("`ax` must be a matplotlib Axes or a non-empty sequence of them; got an empty sequence.")
        figs = [new_axes(a)[0] for a in given]
        return figs[0], (given + [None] * n)[:n]
    fig, one = new_axes(ax)
    return fig, [one] + [None] * (n - 1)


def tidy(fig: Any, ax: Any) -> None:
    """Lay out a figure pft made (``ax`` None); the caller's figure is left as it is."""
    if ax is None:
        fig.tight_layout()
