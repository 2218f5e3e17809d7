"""Canonical forms and automorphism counts of small multigraphs (the engine under ``Diagram``).

A diagram is stored as a symmetric integer matrix ``A`` over *positions* ``0..N-1``:
``A[i][j]`` (``i != j``) is the number of propagators between positions ``i`` and ``j`` and
``A[i][i]`` the number of self-loops at ``i``. Every position has a *class* (an int); only
positions of equal class may be exchanged. Internal vertices of valence ``k`` have class ``-k``
and the external leg labelled ``l`` has class ``l``, so sorting positions by class puts
high-valence vertices first and the (individually fixed) legs last in label order.

The canonical form is the class-preserving relabelling that makes the *column string*

    A[0][0] | A[0][1] A[1][1] | A[0][2] A[1][2] A[2][2] | ...

lexicographically largest (Read 1978; Faradzev 1978). Two properties make it the right tool:

* it is prefix-closed: the first ``r + 1`` columns of a maximal matrix are the maximal form of the
  sub-diagram on those positions, so an *orderly* generator that adds one position at a time and
  keeps only maximal partial matrices meets every isomorphism class exactly once
  (:func:`is_maximal` is that test);
* the relabellings reaching the maximum are exactly the class-preserving vertex automorphisms, so
  the same search counts them.

References
----------
.. [1] R. C. Read, "Every one a winner, or how to avoid isomorphism search when cataloguing
   combinatorial configurations", Ann. Discrete Math. 2 (1978) 107-120.
.. [2] I. A. Faradzev, "Constructive enumeration of combinatorial objects", Problèmes
   Combinatoires et Théorie des Graphes, CNRS (1978) 131-135.
"""

from __future__ import annotations

from math import factorial

__all__ = ["maximal_form", "is_maximal", "edge_symmetry"]


def maximal_form(classes, A):
    """Maximal column string over class-preserving relabellings.

    Parameters
    ----------
    classes : sequence of int, length N, non-decreasing
    A : N x N symmetric nested sequence of int

    Returns
    -------
    perm : list of int
        ``perm[j]`` is the original position placed at canonical position ``j``.
    columns : tuple of tuple of int
        The maximal column string, column by column.
    n_automorphisms : int
        Number of class-preserving vertex permutations that fix ``A``.

    Examples
    --------
    >>> maximal_form([-3, -3], [[0, 1], [1, 1]])  # one line, a loop at 1: 1 goes first
    ([1, 0], ((1,), (1, 0)), 1)
    """
    n = len(classes)
    used = [False] * n
    perm = [0] * n
    cur: list[tuple[int, ...]] = []
    st = {"best": None, "perm": None, "count": 0, "version": 0}

    def dfs(j: int, greater: bool) -> None:
        if j == n:
            if greater or st["best"] is None:
                st["best"] = tuple(cur)
                st["perm"] = perm[:]
                st["count"] = 1
                st["version"] += 1
            else:
                st["count"] += 1
            return
        cj = classes[j]
        chosen = perm[:j]
        cols = []
        for v in range(n):
            if used[v] or classes[v] != cj:
                continue
            Av = A[v]
            cols.append((tuple([Av[p] for p in chosen]) + (Av[v],), v))
        top = max(c for c, _ in cols)
        version = st["version"]
        for col, v in cols:
            if col != top:
                continue
            if st["version"] != version:  # a new best was found below: our prefix now equals it
                greater = False
                version = st["version"]
            if greater or st["best"] is None:
                child = True
            else:
                ref = st["best"][j]
                if top < ref:
                    return
                child = top > ref
            used[v] = True
            perm[j] = v
            cur.append(col)
            dfs(j + 1, child)
            cur.pop()
            used[v] = False

    if n == 0:
        return [], (), 1
    dfs(0, False)
    return st["perm"], st["best"], st["count"]


def is_maximal(classes, A, r: int, *, count: bool = False):
    """Whether the sub-matrix on positions ``0..r`` is already in maximal form.

    Orderly generation keeps a partial matrix only when this holds. With ``count=True`` the
    return value is the number of class-preserving automorphisms of that sub-matrix (0 when it
    is not maximal), otherwise a bool.

    Examples
    --------
    >>> A = [[0, 3], [3, 0]]   # the theta diagram of phi^3
    >>> is_maximal([-3, -3], A, 1, count=True)
    2
    >>> is_maximal([-3, -3], [[0, 1], [1, 1]], 1)   # a loop at 1 but not at 0: not maximal
    False
    """
    m = r + 1
    used = [False] * m
    perm = [0] * m
    found = [0]
    target = [[A[i][j] for i in range(j)] for j in range(m)]

    def dfs(j: int) -> bool:
        cj = classes[j]
        Aj = target[j]
        ajj = A[j][j]
        for v in range(m):
            if used[v] or classes[v] != cj:
                continue
            Av = A[v]
            cmp = 0
            for i in range(j):
                a = Av[perm[i]]
                b = Aj[i]
                if a != b:
                    cmp = 1 if a > b else -1
                    break
            if cmp == 0 and Av[v] != ajj:
                cmp = 1 if Av[v] > ajj else -1
            if cmp > 0:
                return False
            if cmp < 0:
                continue
            if j == r:
                found[0] += 1
                continue
            used[v] = True
            perm[j] = v
            ok = dfs(j + 1)
            used[v] = False
            if not ok:
                return False
        return True

    ok = dfs(0)
    if count:
        return found[0] if ok else 0
    return ok


def edge_symmetry(A) -> int:
    """Half-edge automorphisms that fix every vertex: ``m!`` per bundle of ``m`` parallel
    propagators and ``2^s s!`` per ``s`` self-loops at one vertex.

    Examples
    --------
    >>> edge_symmetry([[1, 2], [2, 1]])   # 2 parallel lines, one loop at each end
    8
    """
    out = 1
    n = len(A)
    for i in range(n):
        s = A[i][i]
        out *= (2**s) * factorial(s)
        for j in range(i + 1, n):
            out *= factorial(A[i][j])
    return out
