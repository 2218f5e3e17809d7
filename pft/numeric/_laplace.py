"""Laplace expansion of a torch callable: autodiff vertex tensors, planned contractions.

The diagrams and their :class:`~pft.symbolic.ContractionPlan` come from :mod:`pft.symbolic`;
this module is a floating-point engine in the sense of :mod:`pft.symbolic.engine`: it supplies
the operands and executes the plans.

* A vertex operand ``Λ_{k,s}`` (``λ_k`` with ``s`` self-loops closed by ``G``) is the rank
  ``k - 2s`` derivative at ``x*`` of ``F_s``, where ``F_0 = S`` and
  ``F_s(x) = Σ_ij G_ij ∂_i∂_j F_{s-1}(x)``: the loops are closed inside the derivative, so the
  figure-eight at ``d = 100`` needs ``d²`` Hessian entries of ``F_1``, never the ``d⁴`` tensor
  ``λ_4``. Derivatives by nested ``torch.func`` (``jacrev`` then ``jacfwd``).
* Each plan is contracted pairwise along the path ``numpy.einsum_path`` finds
  (``optimal`` for few operands, ``greedy`` otherwise), executed with ``torch.einsum``.
* Before anything large is formed its size is estimated; beyond ``max_elements`` an
  :class:`~pft.errors.OutOfReachError` says what was too big and what to change.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
import numpy as np
import torch

from pft._device import torch_device
from pft._validate import check_float, check_int
from pft.errors import InputError, OutOfReachError
from pft.symbolic import LaplaceExpansion
from pft.symbolic.engine import ContractionPlan, Operand, build_terms, diagrams_of_order, not_positive_definite

__all__ = ["laplace"]

#: Largest tensor (elements) a derivative or an intermediate contraction may form.
MAX_ELEMENTS = 60_000_000


def laplace(
    fn,
    x_star,
    *,
    order: int,
    n: float | None = None,
    device=None,
    dtype: torch.dtype = torch.float64,
    max_elements: int = MAX_ELEMENTS,
) -> LaplaceExpansion:
    """Laplace expansion of ``log ∫ exp(-n fn(x)) dx`` around the minimum ``x_star``.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> scalar tensor`` for ``x`` of shape ``(d,)``; written with torch operations
        that ``torch.func`` can differentiate (no in-place updates of ``x``, no ``.item()``).
    x_star : array_like, shape (d,)
        The minimum, or a point near it: a few Newton steps refine it until the gradient
        vanishes to rounding (``result.point`` is the refined point).
    order : int
        Number of corrections ``c_1 … c_order``.
    n : float, optional
        A sample size to print term sizes ``value · n^-k`` at and the default of
        ``result.log_partition()``.
    device : torch.device or str, optional
        Where the derivatives and contractions run. Default: ``x_star``'s device when it is a
        tensor, else the CPU.
    dtype : torch.dtype, default torch.float64
    max_elements : int
        Largest tensor allowed (derivative or intermediate); default 6·10⁷ (480 MB in float64).

    Returns
    -------
    pft.symbolic.LaplaceExpansion
        Same object as :func:`pft.symbolic.laplace_expansion`, with floats and numpy arrays:
        ``.coefficients``, ``.terms``, ``.log_partition(n)``, ``.mean(order)``,
        ``.covariance(order)``. ``.vertices`` holds the full tensors ``λ_k`` a plan needed whole.

    Raises
    ------
    pft.errors.NotPositiveDefiniteError
        When the Hessian at the point is not positive definite (saddle, degenerate minimum).
    pft.errors.OutOfReachError
        When a derivative or contraction would exceed ``max_elements``.

    Notes
    -----
    Cost: the rank-r derivative of ``F_s`` takes about ``d^(r-1+s)`` batched evaluations of
    ``fn``'s graph. Order 1 needs ``λ_3`` (``d³``), ``Λ_{3,1}`` and ``Λ_{4,2}``; order 2 needs up
    to ``λ_4``, ``Λ_{5,1}`` (``d³`` entries) and ``Λ_{6,3}``.

    Examples
    --------
    >>> import torch
    >>> res = laplace(lambda x: x[0] - torch.log(x[0]), [1.0], order=3)   # Stirling
    >>> [round(c, 12) for c in res.coefficients]
    [0.083333333333, 0.0, -0.002777777778]
    """
    if not callable(fn):
        raise InputError(f"`fn` must be callable (x -> scalar tensor); got {type(fn).__name__}.")
    order = check_int(order, "order", minimum=0)
    if n is not None:
        n = check_float(n, "n", minimum=0, exclusive_minimum=True)
    max_elements = check_int(max_elements, "max_elements", minimum=1)
    _load_forward_ad()
    # device=None: a tensor x_star's own device, else the CPU (torch_device's default)
    device = x_star.device if device is None and isinstance(x_star, torch.Tensor) else torch_device(device)
    if isinstance(x_star, torch.Tensor):  # numpy's __array__ protocol on tensors warns under numpy 2
        x_star = x_star.detach().cpu().to(torch.float64).numpy()
    x0 = np.array(x_star, dtype=np.float64)  # a copy: the input is never touched
    if x0.ndim == 0:
        x0 = x0.reshape(1)
    if x0.ndim != 1 or x0.size == 0 or not np.all(np.isfinite(x0)):
        raise InputError(
            f"`x_star` must be a finite, non-empty 1-D array (d,); got shape {x0.shape}"
            + ("." if x0.ndim != 1 or x0.size == 0 else f" with {int(np.sum(~np.isfinite(x0)))} NaN/inf entries.")
        )
    d = x0.size
    x = torch.as_tensor(x0, dtype=dtype, device=device)
    value = _scalar_call(fn, x)
    if d * d > max_elements:
        raise OutOfReachError(f"the Hessian alone has {d * d} entries (> max_elements = {max_elements})")
    x, hess = _newton(fn, x)
    evals, evecs = torch.linalg.eigh(hess)
    scale = max(float(evals.abs().max()), np.finfo(np.float64).tiny)
    if float(evals.min()) <= d * torch.finfo(dtype).eps * scale:
        raise not_positive_definite(evals.cpu().numpy(), f"at x* = {np.array2string(x.cpu().numpy(), precision=6, threshold=8)}")
    G = (evecs / evals) @ evecs.T
    G = (G + G.T) / 2
    engine = _TorchEngine(fn, x, G, max_elements)
    engine.precheck(plan for k in range(1, order + 1) for _, plan in diagrams_of_order(0, k))
    terms = {k: build_terms(engine, 0, k) for k in range(1, order + 1)}
    coefficients = tuple(float(sum(t.value for t in terms[k])) for k in terms)
    value = float(_scalar_call(fn, x))
    return LaplaceExpansion(
        variables=tuple(f"x{i}" for i in range(d)),
        order=order,
        point=x.cpu().numpy(),
        action_value=value,
        hessian=hess.cpu().numpy(),
        propagator=G.cpu().numpy(),
        log_det_hessian=float(torch.log(evals).sum()),
        vertices={op.valence: t.cpu().numpy() for op, t in sorted(engine.cache.items()) if op.kind == "vertex" and op.self_loops == 0},
        coefficients=coefficients,
        terms=terms,
        exact=False,
        n=None if n is None else float(n),
        engine=engine,
    )


@lru_cache(maxsize=1)
def _load_forward_ad() -> None:
    """torch loads its forward-mode decompositions on first use through ``torch.jit.script``,
    which torch 2.13 itself flags as deprecated; load them once with that warning silenced so
    callers running with warnings as errors are not tripped by torch's internals."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
        torch.func.jvp(torch.sin, (torch.zeros(1, dtype=torch.float64),), (torch.ones(1, dtype=torch.float64),))


def _scalar_call(fn, x):
    out = fn(x)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise InputError(
            f"`fn` must return a scalar tensor (one element); got {type(out).__name__}"
            + (f" of shape {tuple(out.shape)}." if isinstance(out, torch.Tensor) else ".")
        )
    if not torch.isfinite(out).all():
        raise InputError(f"`fn` must be finite at `x_star`; got {float(out)!r}.")
    return out.reshape(())


def _hessian(fn, x):
    return torch.func.hessian(lambda y: fn(y).reshape(()))(x)


def _newton(fn, x, steps: int = 20):
    """Refine a critical point: Newton steps until the update is at rounding level."""
    grad = torch.func.grad(lambda y: fn(y).reshape(()))
    eps = torch.finfo(x.dtype).eps
    for _ in range(steps):
        hess = _hessian(fn, x)
        g = grad(x)
        scale = float(hess.abs().max()) * (1 + float(x.abs().max()))
        if float(g.abs().max()) <= 64 * eps * max(scale, 1.0):
            return x, (hess + hess.T) / 2
        try:
            step = torch.linalg.solve(hess, g)
        except RuntimeError:
            break
        if not torch.isfinite(step).all():
            break
        x = x - step
    hess = _hessian(fn, x)
    g = grad(x)
    scale = float(hess.abs().max()) * (1 + float(x.abs().max()))
    if float(g.abs().max()) <= np.sqrt(eps) * max(scale, 1.0):
        return x, (hess + hess.T) / 2
    raise InputError(
        "`x_star` must be near a critical point of `fn`; got a point where, after Newton refinement, "
        f"the gradient is still {float(g.abs().max()):.3g} in max-norm. Pass a point near the minimum."
    )


class _TorchEngine:
    """Operands by autodiff, plans by path-optimised pairwise torch.einsum."""

    def __init__(self, fn, x, G, max_elements):
        self.fn = fn
        self.x = x
        self.G = G
        self.dim = x.shape[0]
        self.max_elements = max_elements
        self.cache: dict[Operand, torch.Tensor] = {}
        self._paths: dict[str, list] = {}

    # ---- operands
    def dressed_function(self, s: int):
        fn = lambda y: self.fn(y).reshape(())
        G = self.G
        for _ in range(s):
            inner = fn
            fn = lambda y, inner=inner: (torch.func.hessian(inner)(y) * G).sum()
        return fn

    def precheck(self, plans) -> None:
        """Refuse, before any work, a set of plans that would form a tensor over the limit."""
        for plan in plans:
            for op in plan.operands:
                self._check_operand(op)
            self._path(plan.equation, [(self.dim,) * op.rank for op in plan.operands])

    def _check_operand(self, op: Operand) -> None:
        if op.kind == "propagator":
            return
        r, s, d = op.rank, op.self_loops, self.dim
        estimate = d ** (max(r, 1) + s)
        if d**r > self.max_elements or estimate > self.max_elements:
            raise OutOfReachError(
                f"the vertex operand {op} (λ{op.valence} with {s} closed loops, rank {r}) at d = {d} "
                f"needs about {estimate:.3g} tensor elements (> max_elements = {self.max_elements}); "
                "lower the order or the dimension, or raise max_elements if memory allows"
            )

    def operand(self, op: Operand):
        if op.kind == "propagator":
            return self.G
        if op not in self.cache:
            self._check_operand(op)
            r, s = op.rank, op.self_loops
            f = self.dressed_function(s)
            if r == 0:
                t = f(self.x)
            else:
                jac = torch.func.jacrev(f)
                for _ in range(r - 1):
                    jac = torch.func.jacfwd(jac)
                t = jac(self.x)
            self.cache[op] = _symmetrize(t.detach())
        return self.cache[op]

    # ---- contraction
    def einsum(self, equation: str, *operands):
        inputs, output = equation.split("->")
        terms = inputs.split(",")
        path = self._path(equation, [tuple(o.shape) for o in operands])
        ops = list(operands)
        terms = list(terms)
        for pair in path:
            picked = [terms[i] for i in pair]
            tensors = [ops[i] for i in pair]
            for i in sorted(pair, reverse=True):
                del terms[i], ops[i]
            keep = set("".join(terms)) | set(output)
            result = "".join(dict.fromkeys(c for c in "".join(picked) if c in keep))
            ops.append(torch.einsum(",".join(picked) + "->" + result, *tensors))
            terms.append(result)
        if len(ops) == 1 and terms[0] == output:
            return ops[0]
        return torch.einsum(",".join(terms) + "->" + output, *ops)

    def _path(self, equation, shapes):
        key = (equation, tuple(tuple(s) for s in shapes))
        if key not in self._paths:
            if len(shapes) <= 2:  # nothing to order; only the size check
                path, info = [None, tuple(range(len(shapes)))], ""
                largest = max([float(np.prod(s)) for s in shapes] + [0.0])
                if largest > self.max_elements:
                    raise OutOfReachError(f"an operand of {equation!r} has {largest:.3g} elements (> max_elements)")
                self._paths[key] = [tuple(p) for p in path[1:]]
                return self._paths[key]
            dummies = [np.broadcast_to(np.zeros(()), s) for s in shapes]
            strategy = "optimal" if len(shapes) <= 6 else "greedy"
            path, info = np.einsum_path(equation, *dummies, optimize=strategy)
            largest = _largest_intermediate(info)
            if largest > self.max_elements:
                raise OutOfReachError(
                    f"contracting {equation!r} at d = {self.dim} needs an intermediate of {largest:.3g} "
                    f"elements (> max_elements = {self.max_elements}); lower the order or the dimension"
                )
            self._paths[key] = [tuple(p) for p in path[1:]]
        return self._paths[key]

    def contract(self, plan: ContractionPlan):
        return plan.evaluate(self.operand, einsum=self.einsum)

    def tidy(self, value):
        arr = value.detach().cpu().numpy()
        return float(arr) if arr.ndim == 0 else arr

    def collect(self, values, shape):
        total = np.zeros(shape)
        for v in values:
            total = total + v
        return total


def _largest_intermediate(info: str) -> float:
    for line in info.splitlines():
        if "Largest intermediate" in line:
            return float(line.split(":")[1].split()[0])
    return 0.0


def _symmetrize(t: torch.Tensor) -> torch.Tensor:
    """Average over index permutations (autodiff is symmetric only to rounding); cheap for
    the small ranks used, skipped for rank > 4 where the cost would rival the derivative."""
    r = t.dim()
    if r < 2 or r > 4:
        return t
    from itertools import permutations

    perms = list(permutations(range(r)))
    return sum(t.permute(p) for p in perms) / len(perms)
