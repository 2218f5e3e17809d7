"""Enumeration of Feynman diagrams up to isomorphism, by orderly generation.

Positions (internal vertices by descending valence, then the labelled legs) are added one at a
time; each new position chooses how many propagators it sends to every earlier position and how
many self-loops it carries. A partial adjacency matrix survives only if it is already in maximal
form (:func:`pft.symbolic._automorphisms.is_maximal`), which makes every isomorphism class
appear exactly once, without any table of seen graphs (Read 1978). At the last position the same
test counts the vertex automorphisms, so symmetry factors come for free.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product
from numbers import Integral

from pft._validate import check_int
from pft.errors import InputError, OutOfReachError
from pft.symbolic._automorphisms import is_maximal
from pft.symbolic._diagram import Diagram

__all__ = ["vacuum_diagrams", "correlator_diagrams"]


def _orderly(vals, n_ext, connected):
    """Yield ``(matrix, n_vertex_automorphisms)`` for every diagram, once per class.

    ``vals``: internal valences, descending. ``n_ext``: labelled legs (placed last).
    """
    classes = [-k for k in vals] + list(range(n_ext))
    valence = list(vals) + [1] * n_ext
    N = len(classes)
    if N == 0:
        yield [], 1
        return
    A = [[0] * N for _ in range(N)]
    D = list(valence)  # free half-edges per position
    suffix = [0] * (N + 1)
    for j in range(N - 1, -1, -1):
        suffix[j] = suffix[j + 1] + valence[j]

    def closed_component(r):
        # Only the component of the new position r changed since the last (passing) check: is it
        # finished (no free half-edges) without being the whole diagram?
        seen = [False] * (r + 1)
        seen[r] = True
        stack = [r]
        free = 0
        size = 0
        while stack:
            u = stack.pop()
            free += D[u]
            if free:
                return False
            size += 1
            Au = A[u]
            for w in range(r + 1):
                if w != u and Au[w] and not seen[w]:
                    seen[w] = True
                    stack.append(w)
        return size < N

    def place(r):
        if r == N:
            return
        val = valence[r]
        rest = suffix[r + 1]
        last = r == N - 1

        def column(i, left):
            if i == r:
                for loops in range(left // 2, -1, -1):
                    A[r][r] = loops
                    D[r] = left - 2 * loops
                    free = sum(D[: r + 1])
                    if free > rest or (rest - free) % 2:
                        continue
                    if connected and closed_component(r):
                        continue
                    if last:
                        aut = is_maximal(classes, A, r, count=True)
                        if aut:
                            yield [row[:] for row in A], aut
                    elif is_maximal(classes, A, r):
                        yield from place(r + 1)
                A[r][r] = 0
                D[r] = val
                return
            for m in range(min(D[i], left), -1, -1):
                A[i][r] = A[r][i] = m
                D[i] -= m
                yield from column(i + 1, left - m)
                D[i] += m
            A[i][r] = A[r][i] = 0

        yield from column(0, val)

    yield from place(0)


def _diagrams_for(vals_desc, n_ext, connected):
    return [
        Diagram._from_canonical(vals_desc, n_ext, A, aut)
        for A, aut in _orderly(list(vals_desc), n_ext, connected)
    ]


# ---------------------------------------------------------------------------- validation
def _check_valences(valences):
    if isinstance(valences, Integral) and not isinstance(valences, bool):
        valences = (valences,)
    try:
        vals = list(valences)
    except TypeError:
        raise InputError(
            f"`valences` must be a sequence of vertex degrees such as (3, 4); got {valences!r}."
        ) from None
    if not vals:
        raise InputError("`valences` must name at least one vertex degree, e.g. (3, 4); got ().")
    for k in vals:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise InputError(f"`valences` must hold integers >= 1; got {valences!r}.")
    return tuple(sorted({int(k) for k in vals}))


def _check_vertices(vertices, vals):
    if not isinstance(vertices, Mapping):
        raise InputError(
            f"`vertices` must map valence -> count, e.g. {{3: 2, 4: 1}}; got {vertices!r}."
        )
    out = {}
    for k, m in vertices.items():
        if k not in vals:
            raise InputError(
                f"`vertices` uses valence {k!r}, which is not among `valences` {vals}."
            )
        out[int(k)] = check_int(m, f"vertices[{k}]", minimum=0)
    return out


def _multisets(vals, total_excess_max, n_ext):
    """Vertex multisets (dicts) with sum over vertices of (k - 2) <= total_excess_max and an
    even number of half-edges, for valences >= 3."""
    out = []
    bounds = [total_excess_max // (k - 2) for k in vals]
    for counts in product(*(range(b + 1) for b in bounds)):
        excess = sum(m * (k - 2) for m, k in zip(counts, vals))
        half = sum(m * k for m, k in zip(counts, vals)) + n_ext
        if excess <= total_excess_max and half % 2 == 0:
            out.append(dict(zip(vals, counts)))
    return out


def _select(valences, loops, vertices, n_ext):
    vals = _check_valences(valences)
    if (loops is None) == (vertices is None):
        raise InputError(
            "give exactly one of `loops` (an int) and `vertices` (a valence -> count mapping); "
            f"got loops={loops!r}, vertices={vertices!r}."
        )
    if vertices is not None:
        return [_check_vertices(vertices, vals)], None
    L = check_int(loops, "loops", minimum=0)
    if vals[0] < 3:
        raise InputError(
            f"`loops` needs every valence >= 3 (vertices of degree 1 or 2 give infinitely many "
            f"diagrams at a fixed loop number); got valences {vals}. Use `vertices=` instead."
        )
    # each component with vertices has sum(k - 2) = 2 L_c - 2 + (legs on it)
    most = max(0, 2 * L - 2 + n_ext) // (vals[0] - 2)  # vertices, all of the smallest valence
    _check_reach([{vals[0]: most}], n_ext, L)  # before the multisets are even listed
    return _multisets(vals, 2 * L - 2 + n_ext, n_ext) + ([{}] if n_ext or L == 0 else []), L


#: Most positions (internal vertices + external legs) a diagram may have. The orderly search
#: grows factorially with it: on a 2-core CPU 8 positions take seconds, 10 take about half a
#: minute (all 388 cubic vacuum graphs on 10 vertices; 5076 2-point φ³+φ⁴ diagrams at 4 loops),
#: 11 or more take many minutes.
MAX_POSITIONS = 10


def _check_reach(multisets, n_ext, loops):
    """Refuse, before any search, a request whose largest diagram has too many positions."""
    if not multisets:
        return
    worst = max(multisets, key=lambda ms: sum(ms.values()))
    positions = sum(worst.values()) + n_ext
    if positions > MAX_POSITIONS:
        what = f"{loops} loops" if loops is not None else "this vertex content"
        content = ", ".join(f"{m} of valence {k}" for k, m in sorted(worst.items()) if m) or "no vertices"
        raise OutOfReachError(
            f"{what} with {n_ext} external legs needs diagrams of up to {positions} positions ({content}, "
            f"plus the legs); enumeration grows factorially and is limited to {MAX_POSITIONS} positions "
            "(minutes beyond). Lower `loops`, `n_external` or the vertex counts (CLI: --loops, --external, --vertices)."
        )


def _enumerate(valences, loops, vertices, n_ext, connected, one_pi, amputated):
    multisets, L = _select(valences, loops, vertices, n_ext)
    _check_reach(multisets, n_ext, L)
    out = []
    seen = set()
    for ms in multisets:
        key = tuple(sorted((k, m) for k, m in ms.items() if m))
        if key in seen:
            continue
        seen.add(key)
        vals_desc = sorted((k for k, m in ms.items() for _ in range(m)), reverse=True)
        if (sum(vals_desc) + n_ext) % 2:
            continue
        for d in _diagrams_for(vals_desc, n_ext, connected):
            if L is not None and d.n_loops != L:
                continue
            if one_pi and not d.is_one_particle_irreducible:
                continue
            if amputated and not d.is_amputated:
                continue
            if connected and not d.is_connected:
                continue
            out.append(d)
    out.sort(key=Diagram._sort_key)
    return out


# ---------------------------------------------------------------------------- public
def vacuum_diagrams(valences, *, loops=None, vertices=None, connected=True, one_pi=False):
    """All vacuum diagrams (no external legs) with the given vertex degrees, up to isomorphism.

    Parameters
    ----------
    valences : sequence of int
        Allowed internal vertex degrees, e.g. ``(3, 4)`` for φ³ + φ⁴.
    loops : int, optional
        Loop number ``L`` (cycle rank; summed over components). Needs every valence >= 3.
    vertices : mapping of int to int, optional
        Exact vertex content instead of ``loops``, e.g. ``{3: 2, 4: 1}``. Give exactly one of
        ``loops`` and ``vertices``.
    connected : bool
        Only connected diagrams (default). With ``False`` disconnected ones are included, and the
        empty diagram when no vertex is asked for.
    one_pi : bool
        Only one-particle-irreducible diagrams (no propagator whose cut disconnects).

    Returns
    -------
    list of Diagram
        Sorted by vertex content (number of vertices, then valences), then canonical key.

    Raises
    ------
    pft.errors.OutOfReachError
        Before any search, when a diagram would have more than :data:`MAX_POSITIONS` (10)
        vertices: 10 take about half a minute on a 2-core CPU, 11 or more many minutes.

    Notes
    -----
    Σ over the result of ``Π(-g_k)/|Aut|`` is the coefficient of that vertex content in
    ``log ∫ dx/√(2π) exp(-x²/2 - Σ g_k x^k/k!)`` (connected; in ``Z`` itself otherwise); see
    :func:`zero_dimensional_series` and the conventions in :mod:`pft.symbolic`.

    The diagrams are generated once per isomorphism class by orderly generation (Read 1978):
    vertices are added one at a time and a partial adjacency matrix is kept only when it is
    lexicographically maximal among its relabellings; the same test counts ``|Aut|``.

    References
    ----------
    .. [1] R. C. Read, "Every one a winner", Ann. Discrete Math. 2 (1978) 107-120.
    .. [2] OEIS A005967 (cubic) and A085549 (quartic) connected multigraphs with loops: the
       counts of connected φ³ and φ⁴ vacuum diagrams.

    Examples
    --------
    >>> ds = vacuum_diagrams((4,), vertices={4: 2})
    >>> [d.automorphisms for d in ds], sum(d.symmetry_factor for d in ds)
    ([48, 16], Fraction(1, 12))
    >>> len(vacuum_diagrams((3,), loops=3))   # OEIS A005967: 5 cubic multigraphs on 4 vertices
    5
    """
    return _enumerate(valences, loops, vertices, 0, connected, one_pi, False)


def correlator_diagrams(
    n_external,
    valences,
    *,
    loops=None,
    vertices=None,
    connected=True,
    one_pi=False,
    amputated=False,
):
    """All diagrams with ``n_external`` labelled external legs, up to isomorphism.

    Parameters
    ----------
    n_external : int
        Number of external legs; leg ``i`` is the graph node ``V + i`` with ``label = i``.
    valences, loops, vertices, connected, one_pi
        As in :func:`vacuum_diagrams`. ``loops`` counts the cycles of the internal part.
        ``one_pi`` keeps diagrams with an internal vertex, no leg joined directly to another,
        and no internal propagator whose cut disconnects (for two legs: the self-energy).
    amputated : bool
        Drop diagrams with a leg joined directly to another leg or carrying a correction (a
        piece holding exactly that one leg cut off by a single propagator). For
        ``n_external >= 3`` the connected correlator is the amputated sum with every leg dressed
        by the full propagator.

    Returns
    -------
    list of Diagram
        Sorted by vertex content, then canonical key.

    Raises
    ------
    pft.errors.OutOfReachError
        Before any search, when a diagram would have more than :data:`MAX_POSITIONS` (10)
        positions (internal vertices plus external legs).

    Examples
    --------
    >>> ds = correlator_diagrams(2, (4,), vertices={4: 1})    # the tadpole on a propagator
    >>> ds[0].edges, ds[0].symmetry_factor
    (((0, 0), (0, 1), (0, 2)), Fraction(1, 2))
    >>> len(correlator_diagrams(4, (4,), loops=1, amputated=True))   # s, t and u bubbles
    3
    """
    n = check_int(n_external, "n_external", minimum=0)
    return _enumerate(valences, loops, vertices, n, connected, one_pi, amputated)
