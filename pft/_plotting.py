"""The one plotting convention: ``plot(path=None, *, ax=None) -> Figure``.

Private. Every result's ``plot`` draws on ``ax`` when one is given (the figure is then
``ax.figure``, owned by the caller), otherwise on a new :class:`matplotlib.figure.Figure` that
is not registered with pyplot: nothing leaks into ``plt``'s figure list, no backend is chosen
or switched, and the figure is freed when the caller drops it. With ``path`` the figure is also
written there atomically (the format from the extension). The figure is returned either way.

Examples
--------
>>> fig, ax = new_axes(None, figsize=(3, 2))
>>> _ = ax.plot([0, 1], [0, 1])
>>> finish(fig, None) is fig
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["new_axes", "new_figure", "finish"]


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
