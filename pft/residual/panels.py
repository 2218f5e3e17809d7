"""Moved: several plot panels are :func:`pft._plotting.panels` and :func:`pft._plotting.tidy`.

Package-internal. Kept only as a re-export while :mod:`pft.interop` still imports the old place;
new code imports from :mod:`pft._plotting`.
"""

from __future__ import annotations

from pft._plotting import panels, tidy

__all__ = ["panels", "tidy"]
