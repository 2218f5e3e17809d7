"""Plain-data forms of the values in symbolic results, and how they are shown.

Exact values (sympy numbers and expressions, matrices, object arrays of them) are written as
their ``str`` and read back with the whitelist parser (``read_expression``: nothing is evaluated);
floating-point values (floats, float arrays) are written as numbers and nested lists. Matrices
become lists of rows; one-dimensional arrays plain lists.
"""

from __future__ import annotations

from numbers import Number

import numpy as np
import sympy

__all__ = ["jsonable", "read_exact_matrix", "read_exact_array", "read_float", "short", "is_number"]


def jsonable(value):
    """``value`` in plain JSON types (exact entries as strings)."""
    if value is None:
        return None
    if isinstance(value, sympy.MatrixBase):
        return [[jsonable(v) for v in row] for row in value.tolist()]
    if isinstance(value, sympy.NDimArray):
        return jsonable(np.array(value.tolist(), dtype=object))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [jsonable(v) for v in value] if value.ndim else jsonable(value[()])
        return value.tolist()
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _read_scalar(value, symbols=None):
    from pft.symbolic._parse import read_expression

    return read_expression(value, symbols=symbols) if isinstance(value, str) else sympy.sympify(value)


def read_exact_matrix(value, symbols=None):
    """A matrix field (``point``, ``hessian``...) or a scalar, as written by :func:`jsonable`."""
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return sympy.ImmutableMatrix([[_read_scalar(v, symbols) for v in row] for row in value])
        return sympy.ImmutableMatrix([_read_scalar(v, symbols) for v in value]) if value else sympy.ImmutableMatrix([])
    return _read_scalar(value, symbols)


def read_exact_array(value, symbols=None):
    """An object array of sympy values (a diagram's value), or a scalar, as written by :func:`jsonable`."""
    if isinstance(value, list):
        items = [read_exact_array(v, symbols) for v in value]
        out = np.empty(len(items), dtype=object)
        if items and isinstance(items[0], np.ndarray):
            out = np.empty((len(items), *items[0].shape), dtype=object)
        for i, item in enumerate(items):
            out[i] = item
        return out
    return _read_scalar(value, symbols)


def read_float(value):
    """A float, or a float64 array from nested lists."""
    return np.array(value, dtype=np.float64) if isinstance(value, list) else float(value)


def short(value) -> str:
    """A one-line rendering for tables."""
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, max_line_width=100, threshold=12)
    if isinstance(value, (float, np.floating)):
        return f"{value:.10g}"
    if isinstance(value, sympy.MatrixBase) and value.cols == 1:
        return str(list(value))
    return str(value)


def is_number(value) -> bool:
    """A real number (exact or not), as opposed to an expression with free symbols."""
    if isinstance(value, (Number, np.number)):
        return True
    return isinstance(value, sympy.Basic) and value.is_number and value.is_real is True
