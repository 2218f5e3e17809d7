"""What result dataclasses share: plain-type ``to_dict`` and ``to_json``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

__all__ = ["JsonResult"]


def _plain(v: Any) -> Any:
    """``v`` as JSON gives it back: arrays and tuples become lists, numpy scalars Python numbers,
    through dicts and lists."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


class JsonResult:
    """Mixin for frozen dataclasses: ``to_dict()`` with plain Python types (arrays become nested
    lists, tuples lists), ``to_json(path=None)``. Subclasses add ``from_dict``, may override
    ``to_dict``, and set ``_json_options`` (keyword arguments of ``json.dumps``, e.g. ``indent``)."""

    _json_options: dict = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types (arrays become nested lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, text: str) -> Any:
        """Inverse of :meth:`to_json` (through the subclass's ``from_dict``)."""
        return cls.from_dict(json.loads(text))

    def to_json(self, path: str | None = None, **kwargs: Any) -> str:
        """JSON text (NaN written as ``NaN``); also written to ``path`` when given, atomically
        (a temporary file renamed into place: an interrupted write never leaves half a file)."""
        text = json.dumps(self.to_dict(), **{**self._json_options, **kwargs})
        if path is not None:
            from pft._output import atomic_write, check_output

            atomic_write(check_output(path, name="path"), text)
        return text
