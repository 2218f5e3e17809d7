"""Finite-width recursions of Roberts, Yaida & Hanin (2022): kernel, four-point vertex, 1/n shift.

The critical initialisation (:func:`critical_point`) is in ``_critical``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from pft._results import JsonResult
from pft._validate import check_float, check_int
from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.scaling._activations import Activation, resolve_activation
from pft.scaling._quadrature import _rule_1d, gaussian_expect, gaussian_rule
from pft._text import table

__all__ = ["FiniteWidthTheory", "finite_width_theory"]


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
        Parallel susceptibility ``χ∥⁽ˡ⁾ = C_W ∂⟨σ²⟩_K/∂K = (C_W/2K²)⟨σ²(z)(z² − K)⟩_K`` at
        ``K⁽ˡ⁾`` (per input).
    n_inputs : int or None
        k when several inputs were given, else None (scalar arrays).
    U : ndarray, shape (L,) or (L, k, k, k, k, k, k), or None
        Six-point vertex: ``κ₃(G_A, G_B, G_C) = U_ABC/n² + O(1/n³)`` for the conditional
        covariance ``G`` of layer ℓ over input pairs A, B, C, so the connected six-point function of
        one preactivation is ``κ₆ = 15 U/n²``; ``U⁽¹⁾ = 0``. None when not computed (see
        ``six_point``).
    chi_perp : ndarray, shape (L,) or (L, k), or None
        Perpendicular susceptibility ``χ⊥⁽ˡ⁾ = C_W ⟨σ'(z)²⟩_K`` at ``K⁽ˡ⁾`` (per input); None only
        in results stored before it was reported.
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
    chi_perp: np.ndarray | None = field(default=None, repr=False)

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
        n = check_float(width, "width", minimum=0, exclusive_minimum=True)
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
        n = check_float(width, "width", minimum=0, exclusive_minimum=True)
        K, _ = self._diag()
        if self.n_inputs is None:
            U = self.U
        else:
            a = np.arange(self.n_inputs)
            U = self.U[:, a, a, a, a, a, a]
        return 15.0 * U / (n * n * K**3)

    def second_moment(self, width) -> np.ndarray:
        """``E z² = K + K1_shift / n`` per layer (and input), to order 1/n."""
        n = check_float(width, "width", minimum=0, exclusive_minimum=True)
        K, _ = self._diag()
        K1 = self.K1_shift if self.n_inputs is None else self.K1_shift[:, np.arange(self.n_inputs), np.arange(self.n_inputs)]
        return K + K1 / n

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
            "chi_perp": None if self.chi_perp is None else self.chi_perp.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FiniteWidthTheory":
        arr = {k: np.asarray(d[k], dtype=float) for k in ("K", "V", "K1_shift", "chi_parallel")}
        opt = {k: None if d.get(k) is None else np.asarray(d[k], dtype=float) for k in ("U", "chi_perp")}
        return cls(d["activation"], d["C_W"], d["C_b"], d["depth"], n_inputs=d["n_inputs"], **opt, **arr)

    def __str__(self) -> str:
        K, V = self._diag()
        K1 = self.K1_shift if self.n_inputs is None else self.K1_shift[:, np.arange(self.n_inputs), np.arange(self.n_inputs)]
        chi = self.chi_parallel
        perp = np.full(chi.shape, np.nan) if self.chi_perp is None else self.chi_perp
        head = f"finite-width theory: {self.activation}, C_W={self.C_W:g}, C_b={self.C_b:g}, L={self.depth}"
        if self.n_inputs is not None:
            head += f", {self.n_inputs} inputs (input 0 shown)"
            K, V, K1, chi, perp = K[:, 0], V[:, 0], K1[:, 0], chi[:, 0], perp[:, 0]
        shown = list(range(self.depth)) if self.depth <= 12 else [*range(5), *range(self.depth - 5, self.depth)]
        rows = [[str(i + 1), f"{K[i]:.6g}", f"{V[i] / K[i] ** 2:.6g}", f"{K1[i]:.6g}", f"{chi[i]:.6g}", f"{perp[i]:.6g}"]
                for i in shown]
        return head + "\n" + table(["layer", "K", "V/K^2", "K1_shift", "chi_par", "chi_perp"], rows)


# ---------------------------------------------------------------------------------------------
# recursion

def _single_input(act: Activation, depth: int, C_W: float, C_b: float, K0: float):
    K = np.empty(depth)
    V = np.zeros(depth)
    K1 = np.zeros(depth)
    U = np.zeros(depth)
    chi = np.empty(depth)
    perp = np.empty(depth)
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
        perp[ell] = C_W * (w @ act.prime(z) ** 2)
        if ell + 1 < depth:
            c = chi[ell]
            K[ell + 1] = C_b + C_W * e2
            V[ell + 1] = C_W**2 * (e4 - e2 * e2) + c**2 * V[ell]
            K1[ell + 1] = c * K1[ell] + 0.5 * C_W * d2 * V[ell]
            U[ell + 1] = (C_W**3 * (e6 - 3.0 * e4 * e2 + 2.0 * e2**3) + 3.0 * C_W**2 * c * dv * V[ell]
                          + c**3 * U[ell] + 3.0 * c**2 * C_W * d2 * V[ell] ** 2)
    return K, V, K1, chi, U, perp


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
    perp = np.empty((depth, k))
    K[0] = K0
    for ell in range(depth):
        E2, E4, J, T = _multi_layer(act, K[ell])
        chi[ell] = C_W * np.array([J[a, a, a, a] for a in range(k)])
        perp[ell] = C_W * np.array([_mean_prime_sq(act, K[ell, a, a]) for a in range(k)])
        if ell + 1 < depth:
            K[ell + 1] = C_b + C_W * E2
            V[ell + 1] = C_W**2 * (E4 - np.einsum("ab,cd->abcd", E2, E2)) + C_W**2 * np.einsum(
                "abcd,cdef,ghef->abgh", J, V[ell], J
            )
            K1[ell + 1] = C_W * (np.einsum("abcd,cd->ab", J, K1[ell]) + 0.5 * np.einsum("abcdef,cdef->ab", T, V[ell]))
            if six:
                E6, dE4 = _six_point_parts(act, K[ell])
                U[ell + 1] = _six_point_step(C_W, E2, E4, J, T, V[ell], U[ell], E6, dE4)
    return K, V, K1, chi, U, perp


def _mean_prime_sq(act: Activation, K: float) -> float:
    """``⟨σ'(z)²⟩_K`` by the half-range rule (a kink at 0 is a point of measure zero)."""
    z, w = _rule_1d(K)
    return float(w @ act.prime(z[:, 0]) ** 2)


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
    preactivation is ``3V/(nK²) + O(1/n²)``; ``chi_perp`` is ``χ⊥ = C_W⟨σ'²⟩_K`` (σ' in closed form,
    or by differences for a callable). At a K* > 0 critical point (:func:`critical_point`, e.g.
    GELU) with ``first_kernel = K*`` the kernel stays at ``K*``, ``χ∥ = χ⊥ = 1``, so
    ``V⁽ˡ⁾ = (ℓ − 1) C_W² Var(σ²)`` grows linearly and ``K1⁽ˡ⁾ = ½ C_W g''(K*) Σ_{m<ℓ} V⁽ᵐ⁾``
    quadratically (``g = ⟨σ²⟩_K``). The six-point vertex follows from the law of total
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
    depth = check_int(depth, "depth", minimum=1)
    C_W = check_float(C_W, "C_W", minimum=0, exclusive_minimum=True)
    C_b = check_float(C_b, "C_b", minimum=0)
    if inputs is None:
        K0 = check_float(first_kernel, "first_kernel", minimum=0, exclusive_minimum=True)
        K, V, K1, chi, U, perp = _single_input(act, depth, C_W, C_b, K0)
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
        K, V, K1, chi, U, perp = _multi_input(act, depth, C_W, C_b, K0, six)
        n_inputs = k
    return FiniteWidthTheory(act.name, C_W, C_b, depth, K, V, K1, chi, n_inputs, U, chi_perp=perp)
