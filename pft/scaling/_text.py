"""Aligned text tables: moved to :mod:`pft._text` (kept only for modules that still import it here)."""

from pft._text import table

__all__ = ["table"]
