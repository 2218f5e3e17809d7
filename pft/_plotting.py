"""The one plotting convention: ``plot(path=None, *, ax=None) -> Figure``.

Private. Every result's ``plot`` draws on ``ax`` when one is given (the figure is then
``ax.figure``, owned by the caller), otherwise on a new :class:`matplotlib.figure.Figure` that
is not registered with pyplot: nothing leaks into ``plt``'s figure list, no backend is chosen
or switched, and the figure is freed when the caller drops it. With ``path`` the figure is also
written there atomically (the format from the extension). The figure is returned either way.

Results drawn as several panels side by side use :func:`panels`: by default a new figure with
one axes per panel; given one Axes, the first (main) panel is drawn there and the others are
skipped; given a sequence of Axes, the panels are drawn on them in order (as many as it holds).
:func:`tidy` then lays out a figure pft made and leaves the caller's figure alone.

Examples
--------
>>> fig, ax = new_axes(None, figsize=(3, 2))
>>> _ = ax.plot([0, 1], [0, 1])
>>> finish(fig, None) is fig
True
>>> fig, axes = panels(None, 3, figsize=(9, 3))
>>> len(axes), all(a.figure is fig for a in axes)
(3, True)
>>> own, (first, second) = panels(ax, 2, figsize=(9, 3))  # one Axes: the main panel only
>>> own is ax.figure, first is ax, second
(True, True, None)
>>> tidy(own, ax)  # the caller's figure: left as it is
"""

from __future__ import annotations

from typing import Any

__all__ = ["new_axes", "new_figure", "finish", "panels", "tidy"]


def new_figure(figsize: tuple[float, float] = (6.4, 4.8)) -> Any:
    """A pyplot-free :class:`~matplotlib.figure.Figure` (no backend side effects)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def new_axes(ax: Any = None, *, figsize: tuple[float, float] = (6.4, 4.8)) -> tuple[Any, Any]:
    """``(figure, axes)``: ``ax`` and its figure when given, else a new figure with one axes."""
    if ax is not None:
        if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
            from pft.errors import InputError

            raise InputError(f"`ax` must be a matplotlib Axes; got {type(ax).__name__}.")
        return ax.figure, ax
    fig = new_figure(figsize)
    return fig, fig.add_subplot()


def finish(fig: Any, path: Any = None, *, name: str = "path") -> Any:
    """Save ``fig`` to ``path`` (atomically; checked first) when given; return ``fig``."""
    if path is not None:
        from pft._output import atomic_path, check_output, plot_formats

        target = check_output(path, name=name, formats=plot_formats())
        with atomic_path(target) as tmp:  # never a half-written file
            fig.savefig(tmp, format=target.rsplit(".", 1)[-1].lower())
    return fig


def panels(ax: Any, n: int, *, figsize: tuple[float, float], dpi: float = 110, nrows: int = 1) -> tuple[Any, list]:
    """``(figure, axes)`` for ``n`` panels: ``n`` axes of a new figure (in ``nrows`` rows), or the
    caller's ``ax`` on the caller's figure (one Axes: ``[ax, None, ...]``; a sequence: its axes,
    padded with None or cut to ``n``). A None entry is a panel not drawn."""
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
