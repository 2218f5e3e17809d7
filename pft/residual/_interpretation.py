"""as_interpretation(): one calling convention, ``x -> x̂``, for every kind of interpretation.

pft imports none of the libraries whose objects it adapts (SAELens, sparsify): it reads only
the shapes those objects have (methods ``encode``/``decode``, attributes ``W_dec``, ``cfg.d_in``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from pft._device import tensor_from_numpy
from pft._validate import describe
from pft.errors import InputError

__all__ = ["Interpretation", "as_interpretation"]


def _torch():
    import torch

    return torch


def _as_tensor_like(out: Any, like: Any, what: str):
    """``out`` as a tensor with ``like``'s dtype and device (numpy results are accepted)."""
    torch = _torch()
    if isinstance(out, np.ndarray):
        out = tensor_from_numpy(out)
    if not isinstance(out, torch.Tensor):
        raise InputError(
            f"`interpretation` ({what}) returned {describe(out)}; expected a tensor or array of shape "
            f"{tuple(like.shape)}."
        )
    return out.to(device=like.device, dtype=like.dtype)


class Interpretation:
    """An interpretation as a map from activations to their reconstruction.

    Build it with :func:`as_interpretation`. ``interp(x)`` takes an (n, d) tensor of
    activations (any float dtype, any device) and returns the (n, d) reconstruction with the
    same dtype and device (computed without gradients); ``start`` is the index of ``x``'s first token in the stream of
    tokens the caller feeds (only a precomputed array needs it).

    Attributes
    ----------
    kind : str
        ``"callable"``, ``"encode-decode"`` (SAELens shape), ``"topk-encode-decode"``
        (sparsify shape) or ``"array"``.
    d_in : int or None
        Input width when the object declares it (``cfg.d_in``, ``W_dec``'s width, the array's).
    n_tokens : int or None
        Number of tokens of a precomputed array.
    """

    def __init__(self, fn: Callable[[Any, int], Any], kind: str, *, d_in: int | None = None, n_tokens: int | None = None, source: Any = None, coded: Callable | None = None) -> None:
        self._fn = fn
        self._coded = coded
        self.kind = kind
        self.d_in = d_in
        self.n_tokens = n_tokens
        self.source = source

    @property
    def has_codes(self) -> bool:
        """Whether :meth:`with_codes` returns codes (an object with ``encode``/``decode``)."""
        return self._coded is not None

    def with_codes(self, x: Any, *, start: int = 0):
        """``(x̂, codes)`` from one encoding: codes is the (n, m) dense code tensor (``None`` when
        the interpretation has none: a callable or an array)."""
        if self._coded is None:
            return self(x, start=start), None
        box: list = []
        xh = self(x, start=start, _codes=box)
        return xh, box[0]

    def __call__(self, x: Any, *, start: int = 0, _codes: list | None = None):
        torch = _torch()
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        if x.ndim != 2:
            raise InputError(f"`x` must be (tokens, d); got shape {tuple(x.shape)}.")
        if self.d_in is not None and x.shape[1] != self.d_in:
            raise InputError(
                f"the interpretation ({self.kind}) expects d_in = {self.d_in} but the activations have "
                f"d = {x.shape[1]}; hook the layer the interpretation was trained on."
            )
        with torch.no_grad():
            if _codes is not None and self._coded is not None:
                raw, codes = self._coded(x)
                _codes.append(codes.detach())
            else:
                raw = self._fn(x, start)
            out = _as_tensor_like(raw, x, self.kind)
        if tuple(out.shape) != tuple(x.shape):
            raise InputError(
                f"`interpretation` ({self.kind}) returned shape {tuple(out.shape)} for activations of shape "
                f"{tuple(x.shape)}; a reconstruction must match its input token for token."
            )
        return out

    def __repr__(self) -> str:
        extra = f", d_in={self.d_in}" if self.d_in is not None else ""
        return f"Interpretation(kind={self.kind!r}{extra})"


def trailing_axes(shape: tuple, width: int | None) -> int | None:
    """How many trailing axes of ``shape`` make up one row of ``width`` entries: 1 when the last
    axis has ``width`` entries (or no width is declared), k when the last k axes multiply to it
    (a SAELens ``hook_z`` SAE reads ``(..., n_heads, d_head)`` as rows of ``n_heads·d_head``),
    None when no trailing axes do."""
    if width is None or (len(shape) and shape[-1] == width):
        return 1
    prod = 1
    for k in range(1, len(shape)):
        prod *= int(shape[-k])
        if prod == width and k > 1:
            return k
        if prod > width:
            break
    return None


def _declared_width(obj: Any) -> int | None:
    cfg = getattr(obj, "cfg", None)
    d = getattr(cfg, "d_in", None)
    if isinstance(d, (int, np.integer)):
        return int(d)
    W = getattr(obj, "W_dec", None)
    if W is not None and getattr(W, "ndim", 0) == 2:
        return int(W.shape[1])
    return None


class _flat_io:
    """While open, a SAELens ``hook_z`` SAE (``hook_z_reshaping_mode``) takes and returns flat
    ``(n, n_heads·d_head)`` rows: its reshaping functions are swapped for identities and put back
    on exit, so the object is left exactly as it was (unlike turning the mode off and on)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.saved = None

    def __enter__(self):
        o = self.obj
        if getattr(o, "hook_z_reshaping_mode", False) and hasattr(o, "reshape_fn_in") and hasattr(o, "reshape_fn_out"):
            self.saved = (o.reshape_fn_in, o.reshape_fn_out)
            o.reshape_fn_in = lambda x: x
            o.reshape_fn_out = lambda x, d_head: x
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.obj.reshape_fn_in, self.obj.reshape_fn_out = self.saved


def _dense_topk(obj: Any, acts: Any, idx: Any):
    """(n, m) dense codes from sparsify's ``(top_acts, top_indices)`` (m read off the object)."""
    torch = _torch()
    m = getattr(obj, "num_latents", None)
    if not isinstance(m, (int, np.integer)):
        W = getattr(obj, "W_dec", None)
        m = int(W.shape[0]) if W is not None and getattr(W, "ndim", 0) == 2 else int(idx.max()) + 1
    out = torch.zeros(acts.shape[0], int(m), dtype=acts.dtype, device=acts.device)
    return out.scatter(-1, idx.long(), acts)


def _param_like(obj: Any):
    """dtype/device the object's decoder lives on (to feed it what it expects)."""
    for name in ("W_dec", "b_dec"):
        W = getattr(obj, name, None)
        if W is not None and hasattr(W, "dtype") and hasattr(W, "device"):
            return W
    params = getattr(obj, "parameters", None)
    if callable(params):
        for p in params():
            return p
    return None


def as_interpretation(obj: Any) -> Interpretation:
    """Wrap an interpretation so that it maps activations ``x`` (n, d) to ``x̂`` (n, d).

    Parameters
    ----------
    obj : Interpretation, callable, SAE-like object, or (N, d) array
        - an :class:`Interpretation` (returned as is);
        - an object with ``encode`` and ``decode`` (the SAELens ``SAE`` shape; ``W_dec`` (m, d),
          ``b_dec`` and ``cfg.d_in`` are read when present to check the width and pick the
          dtype/device): ``x̂ = decode(encode(x))``;
        - the sparsify shape: ``encode(x)`` returns a tuple ``(top_acts, top_indices, ...)``
          and ``x̂ = decode(top_acts, top_indices)``;
        - a plain callable ``x -> x̂`` (a ``torch.nn.Module`` included);
        - a precomputed (N, d) array or tensor of reconstructions, consumed in token order:
          the caller passes each chunk's ``start``.

    Returns
    -------
    Interpretation

    Notes
    -----
    Inputs are cast to the decoder's dtype and device when the object has one, and the result
    is cast back to the activations' dtype and device. Nothing is imported from SAELens or
    sparsify; the adapters rely on the shapes above only.

    Examples
    --------
    >>> import torch
    >>> class SAE:                      # the SAELens shape: encode/decode, W_dec, b_dec, cfg.d_in
    ...     def __init__(self):
    ...         self.W_dec = torch.eye(3)[:2] * 2.0
    ...         self.b_dec = torch.zeros(3)
    ...     def encode(self, x):
    ...         return torch.relu((x - self.b_dec) @ self.W_dec.T / 4.0)
    ...     def decode(self, f):
    ...         return f @ self.W_dec + self.b_dec
    >>> interp = as_interpretation(SAE())
    >>> interp.kind, interp.d_in
    ('encode-decode', 3)
    >>> interp(torch.tensor([[1.0, -2.0, 5.0]]))
    tensor([[1., 0., 0.]])
    """
    if isinstance(obj, Interpretation):
        return obj
    torch = _torch()
    if isinstance(obj, (np.ndarray, torch.Tensor)) or (
        hasattr(obj, "shape") and hasattr(obj, "dtype") and not callable(obj)
    ):
        arr = obj if isinstance(obj, torch.Tensor) else torch.as_tensor(np.asarray(obj))
        if arr.ndim != 2:
            raise InputError(
                f"a precomputed `interpretation` must be an (N, d) array of reconstructions; got {describe(obj)}. "
                "Flatten leading axes first, e.g. recon.reshape(-1, recon.shape[-1])."
            )
        if not arr.is_floating_point():
            arr = arr.to(torch.float64)
        N = int(arr.shape[0])

        def take(x, start):
            stop = start + x.shape[0]
            if stop > N:
                raise InputError(
                    f"the precomputed `interpretation` has {N} rows but the model produced at least {stop} "
                    "tokens at the hooked module; pass one reconstruction per token, in the order of `batches`."
                )
            return arr[start:stop]

        return Interpretation(take, "array", d_in=int(arr.shape[1]), n_tokens=N, source=obj)

    enc, dec = getattr(obj, "encode", None), getattr(obj, "decode", None)
    if callable(enc) and callable(dec):
        like = _param_like(obj)
        width = _declared_width(obj)

        # sparsify's encode returns a (top_acts, top_indices, ...) NamedTuple, SAELens' a tensor;
        # the kind is read off what encode returns.
        def coded(x):
            xin = x if like is None else x.to(dtype=like.dtype, device=like.device)
            with _flat_io(obj):
                codes = enc(xin)
                if isinstance(codes, (tuple, list)):
                    if len(codes) < 2:
                        raise InputError(
                            f"`interpretation.encode` returned a {type(codes).__name__} of length {len(codes)}; the "
                            "sparsify shape is (top_acts, top_indices, ...)."
                        )
                    interp.kind = "topk-encode-decode"
                    out = dec(codes[0], codes[1])
                    dense = _dense_topk(obj, codes[0], codes[1])
                else:
                    out = dec(codes)
                    dense = codes.to_dense() if getattr(codes, "is_sparse", False) else codes
            if hasattr(out, "ndim") and out.ndim > 2:  # a hook_z SAE that reshapes its output
                out = out.reshape(out.shape[0], -1)
            return out, dense

        interp = Interpretation(lambda x, start: coded(x)[0], "encode-decode", d_in=width, source=obj, coded=coded)
        return interp

    if callable(obj):
        like = _param_like(obj) if isinstance(obj, torch.nn.Module) else None

        def call(x, start):
            xin = x if like is None else x.to(dtype=like.dtype, device=like.device)
            return obj(xin)

        return Interpretation(call, "callable", source=obj)

    raise InputError(
        f"`interpretation` must be a callable x -> x̂, an object with encode/decode (SAELens or sparsify "
        f"shape), or a precomputed (N, d) array; got {describe(obj)}."
    )
