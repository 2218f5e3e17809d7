"""Finite-width recursions of Roberts, Yaida & Hanin (2022): kernel, four-point vertex, 1/n shift."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from pft._results import JsonResult
from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.scaling._activations import Activation, resolve_activation
from pft.scaling._quadrature import _rule_1d, gaussian_expect, gaussian_rule

__all__ = ["FiniteWidthTheory", "finite_width_theory", "critical_point"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


@dataclass(frozen=True)
class FiniteWidthTheory(JsonResult):
    """Kernel, four-point vertex and 1/n kernel shift of a deep MLP at initialisation.

    Attributes
    ----------
    activation : str
    C_W, C_b : float
    depth : int
        L; arrays run over layers ℓ = 1 … L (index ℓ − 1).
    K : ndarray, shape (L,) or (L, k, k)
        Leading-order kernel ``K⁽ˡ⁾`` (k × k over inputs when ``inputs`` were given).
    V : ndarray, shape (L,) or (L, k, k, k, k)
        Four-point vertex ``V⁽ˡ⁾_{(a₁a₂)(a₃a₄)}``; ``V⁽¹⁾ = 0``.
    K1_shift : ndarray, shape (L,) or (L, k, k)
        NLO kernel: ``E z_a z_b = K_ab + K1_ab / n + O(1/n²)``.
    chi_parallel : ndarray, shape (L,) or (L, k)
        Parallel susceptibility ``χ∥⁽ˡ⁾ = C_W ∂⟨σ²⟩_K/∂K`` at ``K⁽ˡ⁾`` (per input).
    n_inputs : int or None
        k when several inputs were given, else None (scalar arrays).
    U : ndarray, shape (L,) or (L, k, k, k, k, k, k), or None
        Six-point vertex: ``κ₃(G_A, G_B, G_C) = U_ABC/n² + O(1/n³)`` for the conditional
        covariance ``G`` of layer ℓ over input pairs A, B, C, so the connected six-point function of
        one preactivation is ``κ₆ = 15 U/n²``; ``U⁽¹⁾ = 0``. None when not computed (see
        ``six_point``).
    """

    activation: str
    C_W: float
    C_b: float
    depth: int
    K: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    K1_shift: np.ndarray = field(repr=False)
    chi_parallel: np.ndarray = field(repr=False)
    n_inputs: int | None = None
    U: np.ndarray | None = field(default=None, repr=False)

    def _diag(self):
        if self.n_inputs is None:
            return self.K, self.V
        idx = np.arange(self.n_inputs)
        return self.K[:, idx, idx], self.V[:, idx, idx, idx, idx]

    def excess_kurtosis(self, width) -> np.ndarray:
        """Leading-order excess kurtosis ``3 V / (n K²)`` of one preactivation, per layer.

        Parameters
        ----------
        width : float
            Hidden width n.

        Returns
        -------
        ndarray, shape (L,) or (L, k)
            Per layer (and per input).
        """
        n = float(width)
        if not n > 0:
            raise InputError(f"`width` must be positive; got {width!r}.")
        K, V = self._diag()
        return 3.0 * V / (n * K**2)

    def sixth_cumulant(self, width) -> np.ndarray:
        """Leading-order standardised sixth cumulant ``κ₆/(E z²)³ = 15 U / (n² K³)`` per layer.

        Several inputs: per input (shape (L, k)), from the diagonal ``U_(aa)(aa)(aa)`` (needs
        ``six_point`` — the default for up to two inputs).

        Examples
        --------
        >>> th = finite_width_theory("relu", 3, C_W=2.0, C_b=0.0)
        >>> (th.sixth_cumulant(10) * 100 / 15).round(10).tolist()   # U = 44(ℓ−1) + 75(ℓ−1)(ℓ−2)
        [0.0, 44.0, 238.0]
        """
        if self.U is None:
            raise InputError(
                f"`sixth_cumulant`: this theory has no six-point vertex ({self.n_inputs} inputs); use "
                f"finite_width_theory(..., six_point=True) with at most {MAX_INPUTS_SIX_POINT} inputs."
            )
        n = float(width)
        if not n > 0:
            raise InputError(f"`width` must be positive; got {width!r}.")
        K, _ = self._diag()
        if self.n_inputs is None:
            U = self.U
        else:
            a = np.arange(self.n_inputs)
            U = self.U[:, a, a, a, a, a, a]
        return 15.0 * U / (n * n * K**3)

    def second_moment(self, width) -> np.ndarray:
        """``E z² = K + K1_shift / n`` per layer (and input), to order 1/n."""
        K, _ = self._diag()
        K1 = self.K1_shift if self.n_inputs is None else self.K1_shift[:, np.arange(self.n_inputs), np.arange(self.n_inputs)]
        return K + K1 / float(width)

    def to_dict(self) -> dict:
        return {
            "activation": self.activation,
            "C_W": self.C_W,
            "C_b": self.C_b,
            "depth": self.depth,
            "n_inputs": self.n_inputs,
            "K": self.K.tolist(),
            "V": self.V.tolist(),
            "K1_shift": self.K1_shift.tolist(),
            "chi_parallel": self.chi_parallel.tolist(),
            "U": None if self.U is None else self.U.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FiniteWidthTheory":
        arr = {k: np.asarray(d[k], dtype=float) for k in ("K", "V", "K1_shift", "chi_parallel")}
        U = None if d.get("U") is None else np.asarray(d["U"], dtype=float)
        return cls(d["activation"], d["C_W"], d["C_b"], d["depth"], n_inputs=d["n_inputs"], U=U, **arr)

    def __str__(self) -> str:
        K, V = self._diag()
        K1 = self.K1_shift if self.n_inputs is None else self.K1_shift[:, np.arange(self.n_inputs), np.arange(self.n_inputs)]
        chi = self.chi_parallel
        head = f"finite-width theory: {self.activation}, C_W={self.C_W:g}, C_b={self.C_b:g}, L={self.depth}"
        if self.n_inputs is not None:
            head += f", {self.n_inputs} inputs (input 0 shown)"
            K, V, K1, chi = K[:, 0], V[:, 0], K1[:, 0], chi[:, 0]
        shown = list(range(self.depth)) if self.depth <= 12 else [*range(5), *range(self.depth - 5, self.depth)]
        rows = [[str(i + 1), f"{K[i]:.6g}", f"{V[i] / K[i] ** 2:.6g}", f"{K1[i]:.6g}", f"{chi[i]:.6g}"] for i in shown]
        return head + "\n" + _table(["layer", "K", "V/K^2", "K1_shift", "chi_par"], rows)


# ---------------------------------------------------------------------------------------------
# recursion

def _single_input(act: Activation, depth: int, C_W: float, C_b: float, K0: float):
    K = np.empty(depth)
    V = np.zeros(depth)
    K1 = np.zeros(depth)
    U = np.zeros(depth)
    chi = np.empty(depth)
    K[0] = K0
    for ell in range(depth):
        k = K[ell]
        if not k > 0:
            raise NotPositiveDefiniteError(f"the kernel vanished at layer {ell + 1} (K = {k!r}); use C_b > 0 or a nonzero input.")
        z, w = _rule_1d(k)
        z = z[:, 0]
        s2 = np.asarray(act.numpy(z), dtype=float) ** 2
        ws2 = w * s2
        y2 = (z / k) ** 2
        h2 = 0.5 * (y2 - 1.0 / k)  # ∂/∂K of the Gaussian weight, per unit weight
        e2 = ws2.sum()
        e4 = ws2 @ s2
        e6 = ws2 @ (s2 * s2)
        d1 = ws2 @ h2  # ∂⟨σ²⟩/∂K
        d2 = 0.25 * (ws2 @ (y2 * y2 - 6.0 * y2 / k + 3.0 / k**2))  # ∂²⟨σ²⟩/∂K²
        dv = (ws2 * s2) @ h2 - 2.0 * e2 * d1  # ∂/∂K (⟨σ⁴⟩ − ⟨σ²⟩²)
        chi[ell] = C_W * d1
        if ell + 1 < depth:
            c = chi[ell]
            K[ell + 1] = C_b + C_W * e2
            V[ell + 1] = C_W**2 * (e4 - e2 * e2) + c**2 * V[ell]
            K1[ell + 1] = c * K1[ell] + 0.5 * C_W * d2 * V[ell]
            U[ell + 1] = (C_W**3 * (e6 - 3.0 * e4 * e2 + 2.0 * e2**3) + 3.0 * C_W**2 * c * dv * V[ell]
                          + c**3 * U[ell] + 3.0 * c**2 * C_W * d2 * V[ell] ** 2)
    return K, V, K1, chi, U


def _hermite_moments(f: np.ndarray, y: np.ndarray, P: np.ndarray):
    """``Σ_p f_p H_ij(y_p)`` and ``Σ_p f_p H_ijkl(y_p)`` for the Hermite tensors of covariance
    ``P⁻¹`` (``y = P z``): ``H_ij = y_i y_j − P_ij``,
    ``H_ijkl = y_i y_j y_k y_l − (y_i y_j P_kl + 5 perms) + (P_ij P_kl + P_ik P_jl + P_il P_jk)``."""
    m0 = f.sum()
    m2 = np.einsum("p,pi,pj->ij", f, y, y)
    m4 = np.einsum("p,pi,pj,pk,pl->ijkl", f, y, y, y, y, optimize=True)
    H2 = m2 - m0 * P
    t = np.einsum("ij,kl->ijkl", m2, P)
    six = t + t.transpose(0, 2, 1, 3) + t.transpose(0, 2, 3, 1) + t.transpose(2, 3, 0, 1) + t.transpose(1, 3, 0, 2) + t.transpose(3, 1, 2, 0)
    pp = np.einsum("ij,kl->ijkl", P, P)
    H4 = m4 - six + m0 * (pp + pp.transpose(0, 2, 1, 3) + pp.transpose(0, 2, 3, 1))
    return H2, H4


def _multi_layer(act: Activation, K: np.ndarray):
    """⟨σσ⟩, ⟨σσσσ⟩, J = ∂⟨σ_aσ_b⟩/∂K_cd and T = ∂²⟨σ_aσ_b⟩/∂K_cd∂K_ef at one layer."""
    k = K.shape[0]
    E2 = np.empty((k, k))
    J = np.zeros((k, k, k, k))
    T = np.zeros((k,) * 6)
    for a, b in itertools.combinations_with_replacement(range(k), 2):
        idx = [a] if a == b else [a, b]
        blk = K[np.ix_(idx, idx)]
        z, w = gaussian_rule(blk)
        s = np.asarray(act.numpy(z), dtype=float)
        f = w * (s[:, 0] * s[:, -1])
        E2[a, b] = E2[b, a] = f.sum()
        d = len(idx)
        if d == 2 and np.linalg.det(blk) <= 1e-12 * blk[0, 0] * blk[1, 1]:
            raise NotPositiveDefiniteError(
                f"inputs {a} and {b} have a (numerically) singular 2×2 kernel block at this layer "
                f"(correlation {blk[0, 1] / math.sqrt(blk[0, 0] * blk[1, 1]):.15f}); drop duplicate or collinear inputs."
            )
        P = np.linalg.inv(blk)
        H2, H4 = _hermite_moments(f, z @ P, P)
        ix = np.ix_(idx, idx)
        J[a, b][ix] = J[b, a][ix] = 0.5 * H2
        ix4 = np.ix_(idx, idx, idx, idx)
        T[a, b][ix4] = T[b, a][ix4] = 0.25 * H4
    return E2, _product_moments(act, K, 4), J, T


def _product_moments(act: Activation, K: np.ndarray, order: int) -> np.ndarray:
    """The symmetric tensor ``⟨σ_{i1} … σ_{i_order}⟩_K`` over inputs, each distinct entry once."""
    k = K.shape[0]
    E = np.empty((k,) * order)
    cache: dict = {}
    for ix in itertools.product(range(k), repeat=order):
        key = tuple(sorted(ix))
        if key not in cache:
            idx = sorted(set(key))
            pos = [idx.index(q) for q in key]
            cache[key] = float(gaussian_expect(
                lambda z, _pos=pos: np.prod(np.asarray(act.numpy(z), dtype=float)[:, _pos], axis=1),
                K[np.ix_(idx, idx)],
            ))
        E[ix] = cache[key]
    return E


#: the six-point vertex over several inputs needs ⟨σ⁶⟩-type averages over all distinct inputs
#: involved; the quadrature goes to four dimensions and the cost grows like k⁶, so it stops here
MAX_INPUTS_SIX_POINT = 3


def _six_point_parts(act: Activation, K: np.ndarray):
    """⟨φ_Aφ_Bφ_C⟩ (k⁶) and ∂⟨φ_Bφ_C⟩/∂K_E (k⁶) with φ_(ab) = σ_aσ_b."""
    k = K.shape[0]
    E6 = _product_moments(act, K, 6)
    dE4 = np.zeros((k,) * 6)
    dcache: dict = {}
    for quad in itertools.product(range(k), repeat=4):
        key = tuple(sorted(quad))
        idx = sorted(set(key))
        if key not in dcache:
            blk = K[np.ix_(idx, idx)]
            P = np.linalg.inv(blk)
            pos = [idx.index(q) for q in key]
            d = len(idx)

            def f(z, _pos=pos, _P=P, _d=d):
                phi = np.prod(np.asarray(act.numpy(z), dtype=float)[:, _pos], axis=1)
                y = z @ _P
                return (phi[:, None, None] * (y[:, :, None] * y[:, None, :] - _P)).reshape(-1, _d * _d)

            dcache[key] = 0.5 * np.asarray(gaussian_expect(f, blk)).reshape(d, d)
        dE4[quad][np.ix_(idx, idx)] = dcache[key]
    return E6, dE4


def _six_point_step(C_W, E2, E4, J, T, V, U, E6, dE4):
    """U⁽ˡ⁺¹⁾ over pairs A, B, C (law of total cumulance, to order 1/n²)."""
    k = E2.shape[0]
    q = k * k
    e2 = E2.reshape(q)
    e4 = E4.reshape(q, q)
    e6 = E6.reshape(q, q, q)
    Jr, Tr, Vr, Ur = J.reshape(q, q), T.reshape(q, q, q), V.reshape(q, q), U.reshape(q, q, q)
    kappa = (e6 - np.einsum("ab,c->abc", e4, e2) - np.einsum("ac,b->abc", e4, e2) - np.einsum("bc,a->abc", e4, e2)
             + 2 * np.einsum("a,b,c->abc", e2, e2, e2))
    dc = dE4.reshape(q, q, q) - np.einsum("b,ce->bce", e2, Jr) - np.einsum("c,be->bce", e2, Jr)  # ∂Cov(φ_B,φ_C)/∂K_E
    X = np.einsum("ad,bce,de->abc", Jr, dc, Vr)
    Z = np.einsum("ade,bf,cg,df,eg->abc", Tr, Jr, Jr, Vr, Vr, optimize=True)
    sym = lambda Y: Y + Y.transpose(1, 0, 2) + Y.transpose(1, 2, 0)  # noqa: E731  (which pair is special)
    out = C_W**3 * (kappa + sym(X) + np.einsum("ad,be,cf,def->abc", Jr, Jr, Jr, Ur, optimize=True) + sym(Z))
    return out.reshape((k,) * 6)


def _multi_input(act: Activation, depth: int, C_W: float, C_b: float, K0: np.ndarray, six: bool):
    k = K0.shape[0]
    K = np.empty((depth, k, k))
    V = np.zeros((depth, k, k, k, k))
    K1 = np.zeros((depth, k, k))
    U = np.zeros((depth,) + (k,) * 6) if six else None
    chi = np.empty((depth, k))
    K[0] = K0
    for ell in range(depth):
        E2, E4, J, T = _multi_layer(act, K[ell])
        chi[ell] = C_W * np.array([J[a, a, a, a] for a in range(k)])
        if ell + 1 < depth:
            K[ell + 1] = C_b + C_W * E2
            V[ell + 1] = C_W**2 * (E4 - np.einsum("ab,cd->abcd", E2, E2)) + C_W**2 * np.einsum(
                "abcd,cdef,ghef->abgh", J, V[ell], J
            )
            K1[ell + 1] = C_W * (np.einsum("abcd,cd->ab", J, K1[ell]) + 0.5 * np.einsum("abcdef,cdef->ab", T, V[ell]))
            if six:
                E6, dE4 = _six_point_parts(act, K[ell])
                U[ell + 1] = _six_point_step(C_W, E2, E4, J, T, V[ell], U[ell], E6, dE4)
    return K, V, K1, chi, U


def _check_pos(name, value, *, strict=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be a number; got {value!r}.") from None
    if not math.isfinite(v) or (v <= 0 if strict else v < 0):
        raise InputError(f"`{name}` must be finite and {'> 0' if strict else '>= 0'}; got {value!r}.")
    return v


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InputError(f"`depth` must be an integer >= 1; got {depth!r}.")
    return int(depth)


def finite_width_theory(activation, depth, *, C_W, C_b, first_kernel=1.0, inputs=None,
                        six_point=None) -> FiniteWidthTheory:
    """Leading and next-to-leading order statistics of an MLP at initialisation, layer by layer.

    Parameters
    ----------
    activation : str or callable
        ``relu``, ``leaky_relu[:slope]``, ``linear``, ``abs``, ``tanh``, ``erf``, ``gelu``,
        ``silu``, ``sigmoid``, ``sin``, or an elementwise callable.
    depth : int
        Number of layers L (the last one is the output).
    C_W, C_b : float
        Weight and bias variances: ``W ~ N(0, C_W / n)``, ``b ~ N(0, C_b)``.
    first_kernel : float
        ``K⁽¹⁾`` for one input (``C_b + C_W |x|² / n₀``).
    inputs : array_like, shape (k, n₀), optional
        Several inputs instead; then ``K⁽¹⁾_ab = C_b + C_W x_a·x_b / n₀`` and the arrays carry
        input indices.
    six_point : bool, optional
        Compute the six-point vertex ``U``. Default: for one or two inputs (for three it costs
        seconds per layer; ask with True; more than three inputs are not supported).

    Returns
    -------
    FiniteWidthTheory

    Notes
    -----
    With ``⟨f⟩_K = E_{z~N(0,K)} f(z)``, ``J_{(ab),(cd)} = ½⟨∂_c∂_d σ_aσ_b⟩`` and
    ``T_{(ab),(cd),(ef)} = ¼⟨∂_c∂_d∂_e∂_f σ_aσ_b⟩`` (evaluated as Gaussian averages of
    ``σ_aσ_b`` times Hermite tensors of ``K⁻¹z``, so kinks need no derivatives)::

        K⁽ˡ⁺¹⁾ = C_b + C_W ⟨σσ⟩,   V⁽¹⁾ = 0,   K1⁽¹⁾ = 0
        V⁽ˡ⁺¹⁾ = C_W² (⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩) + C_W² J V⁽ˡ⁾ Jᵀ
        K1⁽ˡ⁺¹⁾ = C_W (J K1⁽ˡ⁾ + ½ T V⁽ˡ⁾)

    For one input ``C_W J = χ∥ = C_W ⟨σ²(z² − K)⟩/(2K²)`` and the excess kurtosis of a
    preactivation is ``3V/(nK²) + O(1/n²)``. The six-point vertex follows from the law of total
    cumulance for ``G⁽ˡ⁾ = C_b + (C_W/n) Σ_j φ(z_j)``, ``φ_(ab) = σ_aσ_b``, given ``G⁽ˡ⁻¹⁾``; for
    one input::

        U⁽ˡ⁺¹⁾ = C_W³ κ₃(σ²) + 3 C_W² χ∥ ∂_K Var(σ²) V⁽ˡ⁾ + χ∥³ U⁽ˡ⁾ + 3 χ∥² C_W g''(K) V⁽ˡ⁾²

    with ``g'' = ∂²⟨σ²⟩/∂K²`` (several inputs: the same four terms with ``J``, ``T``,
    ``∂Cov(φ_B, φ_C)/∂K`` and each term symmetrised over which pair is special); the sixth
    cumulant of a preactivation is ``15 U/n² + O(1/n³)``.

    References
    ----------
    D. A. Roberts, S. Yaida, B. Hanin, *The Principles of Deep Learning Theory*, CUP 2022, ch. 4–5.

    Examples
    --------
    >>> th = finite_width_theory("relu", 4, C_W=2.0, C_b=0.0)
    >>> th.excess_kurtosis(100).round(12).tolist()   # 15 (ℓ − 1) / n
    [0.0, 0.15, 0.3, 0.45]
    """
    act = resolve_activation(activation)
    depth = _check_depth(depth)
    C_W = _check_pos("C_W", C_W)
    C_b = _check_pos("C_b", C_b, strict=False)
    if inputs is None:
        K0 = _check_pos("first_kernel", first_kernel)
        K, V, K1, chi, U = _single_input(act, depth, C_W, C_b, K0)
        n_inputs = None
    else:
        X = np.asarray(inputs, dtype=float)
        if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
            raise InputError(f"`inputs` must be a (k, n0) array; got shape {X.shape}.")
        if not np.all(np.isfinite(X)):
            raise InputError("`inputs` has non-finite entries.")
        if X.shape[0] > 12:
            raise OutOfReachError(f"`inputs` has {X.shape[0]} rows; the vertex tensor grows like k^6 — use at most 12 inputs.")
        K0 = C_b + C_W * (X @ X.T) / X.shape[1]
        if np.any(np.diag(K0) <= 0):
            raise InputError("`inputs`: every input needs C_b + C_W |x|²/n0 > 0 (a zero input with C_b = 0 has no kernel).")
        k = X.shape[0]
        if six_point and k > MAX_INPUTS_SIX_POINT:
            raise InputError(f"`six_point=True` supports at most {MAX_INPUTS_SIX_POINT} inputs; `inputs` has {k}.")
        six = (k <= 2) if six_point is None else bool(six_point)
        K, V, K1, chi, U = _multi_input(act, depth, C_W, C_b, K0, six)
        n_inputs = k
    return FiniteWidthTheory(act.name, C_W, C_b, depth, K, V, K1, chi, n_inputs, U)


def critical_point(activation):
    """``(C_b, C_W)`` at criticality (``χ∥ = 1`` at a fixed point of the kernel), or None.

    Scale-invariant activations (slopes a₊, a₋): ``(0, 2/(a₊² + a₋²))``. The K* = 0 class
    (tanh, erf, sin: σ(0) = 0, σ'(0) ≠ 0, σ''(0) = 0): ``(0, 1/σ'(0)²)``. Otherwise (a callable,
    gelu, silu) it looks numerically for ``C_b = 0`` and a nonzero fixed point where ``⟨σ²⟩_K / K``
    is stationary (there ``χ∥ = 1``). gelu and silu have none: with ``C_W = K/⟨σ²⟩_K``, ``χ∥ > 1``
    for every K and tends to 1 only as K → 0 or ∞ (checked on K ∈ [1e-2, 1e3]). sigmoid
    (σ(0) ≠ 0) has none.

    Parameters
    ----------
    activation : str or callable

    Returns
    -------
    tuple of float or None
        ``(C_b, C_W)``, or None where no critical point exists.

    References
    ----------
    Roberts, Yaida & Hanin (2022), §5.2–5.4.

    Examples
    --------
    >>> critical_point("relu"), critical_point("tanh"), critical_point("sigmoid")
    ((0.0, 2.0), (0.0, 1.0), None)
    """
    act = resolve_activation(activation)
    if act.slopes is not None:
        a, b = act.slopes
        s = a * a + b * b
        return None if s == 0 else (0.0, 2.0 / s)
    if act.slope_at_zero is not None:
        return (0.0, 1.0 / act.slope_at_zero**2)
    h = 1e-4
    s0, sp, sm = (float(act.numpy(np.array([x]))[0]) for x in (0.0, h, -h))
    if abs(s0) > 1e-12:
        return None
    d1 = (sp - sm) / (2 * h)
    d2 = (sp - 2 * s0 + sm) / h**2
    if abs(d2) < 1e-6 and abs(d1) > 1e-8:
        return (0.0, 1.0 / d1**2)
    from scipy.optimize import brentq

    def dlog(K):  # d/dK log(⟨σ²⟩/K) = ∂⟨σ²⟩/⟨σ²⟩ − 1/K
        z, w = _rule_1d(K)
        s2 = np.asarray(act.numpy(z[:, 0]), dtype=float) ** 2
        return 0.5 * (w * s2) @ ((z[:, 0] / K) ** 2 - 1 / K) / (w @ s2) - 1.0 / K

    grid = np.geomspace(1e-2, 1e3, 120)
    vals = np.array([dlog(K) for K in grid])
    for lo, hi, vlo, vhi in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
        if np.isfinite(vlo) and np.isfinite(vhi) and vlo * vhi < 0:
            Kstar = brentq(dlog, lo, hi, xtol=1e-14, rtol=1e-14)
            z, w = _rule_1d(Kstar)
            e2 = w @ np.asarray(act.numpy(z[:, 0]), dtype=float) ** 2
            return (0.0, float(Kstar / e2))
    return None
