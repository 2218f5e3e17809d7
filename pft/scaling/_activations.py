"""Activation functions by name: a numpy twin for quadrature and a torch twin for sampling.

A piecewise-linear activation ``σ(z) = a₊ z (z > 0), a₋ z (z < 0)`` records its slopes so that
the theory can use closed forms (criticality ``C_W = 2 / (a₊² + a₋²)``) and the quadrature knows
its only kink sits at ``z = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pft.errors import InputError

__all__ = ["Activation", "resolve_activation", "BUILTIN_ACTIVATIONS"]


@dataclass(frozen=True)
class Activation:
    """An activation with its numpy and torch implementations.

    ``slopes`` is ``(a₊, a₋)`` for piecewise-linear activations and ``None`` otherwise;
    ``slope_at_zero`` is ``σ'(0)`` for the activations of the K* = 0 universality class
    (σ(0) = 0, σ'(0) ≠ 0, σ''(0) = 0), where criticality is ``C_b = 0, C_W = 1/σ'(0)²``.
    ``derivative`` is the numpy ``σ'`` (closed forms for the named activations; None for a
    callable, whose derivative :meth:`prime` takes by Richardson-extrapolated differences).
    """

    name: str
    numpy: Callable
    torch: Callable
    slopes: tuple[float, float] | None = None
    slope_at_zero: float | None = None
    builtin: bool = True
    derivative: Callable | None = None

    def __call__(self, z):
        return self.numpy(z)

    def prime(self, z) -> np.ndarray:
        """``σ'(z)`` elementwise (float64).

        Named activations use closed forms. For a callable: central differences at steps
        ``h, h/2, h/4`` combined by two Richardson steps (error O(h⁶)), with
        ``h = 0.01 min(|z|, 1)`` so that no stencil crosses a kink at 0; about 1e-11 relative
        for smooth functions.

        Examples
        --------
        >>> act = resolve_activation(lambda z: np.sin(z))
        >>> bool(abs(act.prime(np.array([0.7]))[0] - np.cos(0.7)) < 1e-11)
        True
        """
        z = np.asarray(z, dtype=float)
        if self.derivative is not None:
            return np.asarray(self.derivative(z), dtype=float)
        return _richardson_derivative(self.numpy, z)


def _np_erf(z):
    from scipy.special import erf

    return erf(z)


def _np_gelu(z):
    from scipy.special import ndtr

    return z * ndtr(z)


def _np_silu(z):
    from scipy.special import expit

    return z * expit(z)


def _np_sigmoid(z):
    from scipy.special import expit

    return expit(z)


def _richardson_derivative(f, z: np.ndarray) -> np.ndarray:
    h = 0.01 * np.minimum(np.abs(z), 1.0)
    h = np.where(h > 0, h, 1e-3)  # at z = 0 itself (a kink there has no derivative anyway)

    def central(step):
        return (np.asarray(f(z + step), dtype=float) - np.asarray(f(z - step), dtype=float)) / (2 * step)

    d1, d2, d4 = central(h), central(h / 2), central(h / 4)
    r1, r2 = (4 * d2 - d1) / 3, (4 * d4 - d2) / 3
    return (16 * r2 - r1) / 15


def _d_erf(z):
    return (2 / math.sqrt(math.pi)) * np.exp(-np.asarray(z, dtype=float) ** 2)


def _d_gelu(z):
    from scipy.special import ndtr

    z = np.asarray(z, dtype=float)
    return ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _d_silu(z):
    from scipy.special import expit

    s = expit(z)
    return s * (1 + np.asarray(z, dtype=float) * (1 - s))


def _d_sigmoid(z):
    from scipy.special import expit

    s = expit(z)
    return s * (1 - s)


def _torch():
    import torch

    return torch


def _piecewise_linear(name: str, a_plus: float, a_minus: float) -> Activation:
    def np_fn(z, _p=a_plus, _m=a_minus):
        z = np.asarray(z, dtype=float)
        return np.where(z > 0, _p * z, _m * z)

    def torch_fn(z, _p=a_plus, _m=a_minus):
        torch = _torch()
        if _p == 1.0:  # the fused kernels are several times faster than torch.where
            if _m == 0.0:
                return torch.relu(z)
            if _m == 1.0:
                return z
            if _m == -1.0:
                return torch.abs(z)
            return torch.nn.functional.leaky_relu(z, _m)
        return torch.where(z > 0, _p * z, _m * z)

    def d_fn(z, _p=a_plus, _m=a_minus):
        return np.where(np.asarray(z, dtype=float) > 0, _p, _m)

    return Activation(name, np_fn, torch_fn, slopes=(a_plus, a_minus), derivative=d_fn)


def _builtin(name: str, param: float | None) -> Activation:
    if name == "relu":
        return _piecewise_linear("relu", 1.0, 0.0)
    if name == "leaky_relu":
        a = 0.01 if param is None else param
        return _piecewise_linear(f"leaky_relu:{a:g}", 1.0, a)
    if name == "linear":
        return _piecewise_linear("linear", 1.0, 1.0)
    if name == "abs":
        return _piecewise_linear("abs", 1.0, -1.0)
    if name == "tanh":
        return Activation("tanh", np.tanh, lambda z: _torch().tanh(z), slope_at_zero=1.0,
                          derivative=lambda z: 1.0 - np.tanh(z) ** 2)
    if name == "erf":
        return Activation("erf", _np_erf, lambda z: _torch().special.erf(z), slope_at_zero=2 / math.sqrt(math.pi),
                          derivative=_d_erf)
    if name == "sin":
        return Activation("sin", np.sin, lambda z: _torch().sin(z), slope_at_zero=1.0, derivative=np.cos)
    if name == "gelu":
        return Activation("gelu", _np_gelu, lambda z: _torch().nn.functional.gelu(z), derivative=_d_gelu)
    if name == "silu":
        return Activation("silu", _np_silu, lambda z: _torch().nn.functional.silu(z), derivative=_d_silu)
    if name == "sigmoid":
        return Activation("sigmoid", _np_sigmoid, lambda z: _torch().sigmoid(z), derivative=_d_sigmoid)
    raise AssertionError(name)


BUILTIN_ACTIVATIONS = ("relu", "leaky_relu", "linear", "abs", "tanh", "erf", "gelu", "silu", "sigmoid", "sin")

_ALIASES = {"leaky": "leaky_relu", "lrelu": "leaky_relu", "identity": "linear", "swish": "silu"}


def resolve_activation(activation) -> Activation:
    """Turn a name (``"relu"``, ``"leaky_relu:0.1"``, ``"tanh"``, ...) or a callable into an
    :class:`Activation`.

    A callable must map a numpy array to an array of the same shape and, for sampling, a torch
    tensor to a tensor; it is treated as smooth except possibly for a kink at 0.

    Examples
    --------
    >>> resolve_activation("Leaky ReLU:0.2").slopes
    (1.0, 0.2)
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        text = activation.strip().lower().replace(" ", "_").replace("-", "_")
        base, _, arg = text.partition(":")
        base = _ALIASES.get(base, base)
        if base not in BUILTIN_ACTIVATIONS:
            raise InputError(
                f"`activation` must be one of {', '.join(BUILTIN_ACTIVATIONS)} or a callable; "
                f"got {activation!r}."
            )
        param = None
        if arg:
            if base != "leaky_relu":
                raise InputError(f"`activation` {activation!r}: only leaky_relu takes a parameter (leaky_relu:0.1).")
            try:
                param = float(arg)
            except ValueError:
                raise InputError(f"`activation` {activation!r}: the slope after ':' must be a number.") from None
            if not math.isfinite(param):
                raise InputError(f"`activation` {activation!r}: the slope must be finite.")
        return _builtin(base, param)
    if callable(activation):
        probe = np.linspace(-2.0, 2.0, 5)
        try:
            out = np.asarray(activation(probe), dtype=float)
        except Exception as exc:  # noqa: BLE001 - report what the user's function did
            raise InputError(
                f"`activation` callable failed on a numpy array ({type(exc).__name__}: {exc}); "
                "it must act elementwise on numpy arrays and torch tensors."
            ) from None
        if out.shape != probe.shape or not np.all(np.isfinite(out)):
            raise InputError(
                f"`activation` callable must map an array of shape {probe.shape} to finite values of the "
                f"same shape; got shape {out.shape}."
            )
        name = getattr(activation, "__name__", type(activation).__name__)
        return Activation(name, activation, activation, builtin=False)
    raise InputError(f"`activation` must be a name or a callable; got {type(activation).__name__}.")
