"""The immutable :class:`Diagram`: a Feynman graph with its exact symmetry factor."""

from __future__ import annotations

from fractions import Fraction
from functools import cached_property

import networkx as nx

from pft.errors import InputError
from pft.symbolic._automorphisms import edge_symmetry, maximal_form

__all__ = ["Diagram"]


class Diagram:
    r"""A Feynman diagram: internal vertices, labelled external legs, propagators.

    A diagram is identified up to isomorphism (relabelling internal vertices, reordering
    half-edges); the external legs are labelled and stay fixed. Equality and hashing go through
    :attr:`canonical_key`, so two isomorphic diagrams are equal.

    Parameters
    ----------
    graph : networkx.MultiGraph (or Graph)
        Nodes carry ``external`` (bool, default False); an external node is a leg of degree 1
        and carries ``label`` (its place ``0..n_external-1`` among the legs). An internal node's
        valence is its degree (a self-loop counts twice); a ``valence`` attribute, when present,
        must agree. Parallel edges are propagators between the same vertices, ``(v, v)`` edges
        self-loops.

    Attributes
    ----------
    graph : networkx.MultiGraph (frozen)
        The diagram in canonical labelling: internal vertices are nodes ``0..V-1`` (valence
        descending, then canonical order), external legs are nodes ``V..V+n-1`` with
        ``label = node - V``. Node attributes: ``valence`` (int; 1 for legs), ``external``
        (bool), and ``label`` (int) on legs. Edges join node ids; a self-loop is a ``(v, v)``
        edge.
    valences : tuple of int
        Sorted (ascending) degrees of the internal vertices.
    vertex_counts : dict of int to int
        How many internal vertices of each valence, e.g. ``{3: 2, 4: 1}``.
    n_vertices, n_external, n_propagators : int
        Internal vertices, external legs, and edges (leg edges included).
    n_loops : int
        Cycle rank ``E - V + components`` of the internal part (internal vertices and the
        propagators between them).
    automorphisms : int
        Order of the automorphism group acting on half-edges with the legs fixed.
    symmetry_factor : fractions.Fraction
        ``1 / automorphisms``.
    canonical_key : tuple
        Hashable; equal for two diagrams iff they are isomorphic.

    Notes
    -----
    ``|Aut| = |Aut_V| · Π m! · Π 2^s s!``: class-preserving vertex permutations that fix the
    multigraph, times ``m!`` per bundle of ``m`` parallel propagators, times ``2^s s!`` per
    ``s`` self-loops at a vertex (see the conventions in :mod:`pft.symbolic`). The canonical form
    is the lexicographically largest column string of the adjacency matrix (Read 1978), found
    by a branch-and-bound search that also counts ``|Aut_V|``.

    Examples
    --------
    >>> d = Diagram.from_edges([(0, 1), (0, 1), (0, 1), (0, 1)])   # the phi^4 "sunset"
    >>> d.valences, d.n_loops, d.automorphisms, d.symmetry_factor
    ((4, 4), 3, 48, Fraction(1, 48))
    >>> d == Diagram.from_edges([("a", "b")] * 4)
    True
    """

    def __init__(self, graph):
        if not isinstance(graph, (nx.Graph, nx.MultiGraph)) or graph.is_directed():
            raise InputError(
                f"`graph` must be an undirected networkx Graph or MultiGraph; got {type(graph).__name__}."
            )
        internal = []
        legs = {}
        for node, data in graph.nodes(data=True):
            deg = graph.degree(node)
            if bool(data.get("external", False)):
                if deg != 1:
                    raise InputError(
                        f"`graph`: external leg {node!r} must have degree 1; it has degree {deg}."
                    )
                label = data.get("label")
                if not isinstance(label, int) or isinstance(label, bool) or label < 0:
                    raise InputError(
                        f"`graph`: external leg {node!r} needs an integer `label` >= 0; got {label!r}."
                    )
                if label in legs:
                    raise InputError(f"`graph`: two external legs carry label {label}.")
                legs[label] = node
            else:
                if deg < 1:
                    raise InputError(f"`graph`: internal vertex {node!r} has no propagator (degree 0).")
                val = data.get("valence", deg)
                if val != deg:
                    raise InputError(
                        f"`graph`: vertex {node!r} has `valence` {val!r} but degree {deg}."
                    )
                internal.append((deg, node))
        if sorted(legs) != list(range(len(legs))):
            raise InputError(
                f"`graph`: external labels must be 0..{len(legs) - 1}; got {sorted(legs)}."
            )
        internal.sort(key=lambda t: -t[0])  # order within a valence is irrelevant to the result
        order = [node for _, node in internal] + [legs[i] for i in range(len(legs))]
        index = {node: i for i, node in enumerate(order)}
        n = len(order)
        A = [[0] * n for _ in range(n)]
        for u, v in graph.edges():
            i, j = index[u], index[v]
            A[i][j] += 1
            if i != j:
                A[j][i] += 1
        classes = [-d for d, _ in internal] + list(range(len(legs)))
        perm, _, aut_v = maximal_form(classes, A)
        canon = tuple(tuple(A[p][q] for q in perm) for p in perm)
        self._set(tuple(d for d, _ in internal), len(legs), canon, aut_v)

    def _set(self, vals, n_ext, matrix, aut_v):
        self._vals = vals  # valence per canonical internal position (descending)
        self._n_ext = n_ext
        self._A = matrix
        self._aut_v = aut_v
        n = len(matrix)
        self._key = (n_ext, vals, tuple(matrix[i][j] for j in range(n) for i in range(j + 1)))

    @classmethod
    def _from_canonical(cls, vals, n_ext, matrix, aut_v):
        """Trusted constructor for matrices already in maximal form (used by the enumerator)."""
        self = cls.__new__(cls)
        self._set(tuple(vals), n_ext, tuple(tuple(row) for row in matrix), aut_v)
        return self

    @classmethod
    def from_edges(cls, edges, *, external=()):
        """Build a diagram from an edge list.

        Parameters
        ----------
        edges : iterable of (node, node)
            One pair per propagator; repeat a pair for parallel propagators, ``(v, v)`` is a
            self-loop.
        external : sequence of node
            The nodes that are external legs, in label order (``external[i]`` gets label i).

        Examples
        --------
        >>> Diagram.from_edges([(0, 0), (0, "x"), (0, "y")], external=["x", "y"]).automorphisms
        2
        """
        g = nx.MultiGraph()
        ext = list(external)
        if len(set(ext)) != len(ext):
            raise InputError(f"`external` lists a node twice: {ext!r}.")
        for i, node in enumerate(ext):
            g.add_node(node, external=True, label=i)
        try:
            pairs = [tuple(e) for e in edges]
        except TypeError as exc:
            raise InputError(f"`edges` must be an iterable of node pairs; got {edges!r}.") from exc
        for e in pairs:
            if len(e) != 2:
                raise InputError(f"`edges` must hold pairs of nodes; got {e!r}.")
            g.add_edge(*e)
        missing = [node for node in ext if g.degree(node) == 0]
        if missing:
            raise InputError(f"`external` names nodes that no edge touches: {missing!r}.")
        return cls(g)

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> d = Diagram.from_edges([(0, 1)] * 3)
        >>> Diagram.from_dict(d.to_dict()) == d
        True
        """
        n_int = len(data["valences"])
        ext = list(range(n_int, n_int + int(data["n_external"])))
        return cls.from_edges([tuple(e) for e in data["edges"]], external=ext)

    # ------------------------------------------------------------------ structure
    @property
    def n_vertices(self) -> int:
        return len(self._vals)

    @property
    def n_external(self) -> int:
        return self._n_ext

    @property
    def valences(self) -> tuple[int, ...]:
        return tuple(sorted(self._vals))

    @property
    def vertex_counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for k in sorted(self._vals):
            out[k] = out.get(k, 0) + 1
        return out

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Propagators as ``(u, v)`` node pairs with ``u <= v``, repeated for parallel ones."""
        A = self._A
        n = len(A)
        out = []
        for i in range(n):
            out.extend([(i, i)] * A[i][i])
            for j in range(i + 1, n):
                out.extend([(i, j)] * A[i][j])
        return tuple(out)

    @property
    def n_propagators(self) -> int:
        return len(self.edges)

    @cached_property
    def graph(self) -> nx.MultiGraph:
        g = nx.MultiGraph()
        V = self.n_vertices
        for i, k in enumerate(self._vals):
            g.add_node(i, valence=k, external=False)
        for lab in range(self._n_ext):
            g.add_node(V + lab, valence=1, external=True, label=lab)
        g.add_edges_from(self.edges)
        return nx.freeze(g)

    def _components(self, nodes, skip=None):
        """Connected components (as count) of the sub-multigraph on ``nodes``, ignoring the
        edge ``skip`` (one copy of it)."""
        nodes = list(nodes)
        inside = set(nodes)
        A = self._A
        seen = set()
        comps = 0
        for s in nodes:
            if s in seen:
                continue
            comps += 1
            seen.add(s)
            stack = [s]
            while stack:
                u = stack.pop()
                for w in inside:
                    if w == u or w in seen:
                        continue
                    m = A[u][w]
                    if skip is not None and {u, w} == set(skip):
                        m -= 1
                    if m > 0:
                        seen.add(w)
                        stack.append(w)
        return comps

    @cached_property
    def n_loops(self) -> int:
        V = self.n_vertices
        A = self._A
        e_int = sum(A[i][i] for i in range(V)) + sum(A[i][j] for i in range(V) for j in range(i + 1, V))
        return e_int - V + self._components(range(V))

    @cached_property
    def is_connected(self) -> bool:
        n = len(self._A)
        return n > 0 and self._components(range(n)) == 1

    @cached_property
    def is_one_particle_irreducible(self) -> bool:
        """True iff the diagram has an internal vertex, no two legs are joined directly, and
        cutting any one propagator between internal vertices leaves the number of connected
        components unchanged (no internal bridge)."""
        V = self.n_vertices
        n = len(self._A)
        A = self._A
        if V == 0:
            return False
        if any(A[i][j] for i in range(V, n) for j in range(V, n)):
            return False
        base = self._components(range(n))
        for i in range(V):
            for j in range(i + 1, V):
                if A[i][j] == 1 and self._components(range(n), skip=(i, j)) > base:
                    return False
        return True

    @cached_property
    def is_amputated(self) -> bool:
        """True iff no two legs are joined directly and no single propagator between internal
        vertices cuts off a piece that holds exactly one external leg (a self-energy, tadpole
        or other correction on that leg)."""
        V = self.n_vertices
        n = len(self._A)
        A = self._A
        if any(A[i][j] for i in range(V, n) for j in range(V, n)):
            return False
        for i in range(V):
            for j in range(i + 1, V):
                if A[i][j] != 1:
                    continue
                side_i = self._side(i, (i, j))
                if j in side_i:
                    continue  # not a bridge
                side_j = self._side(j, (i, j))
                for side in (side_i, side_j):
                    if sum(1 for v in side if v >= V) == 1:
                        return False
        return True

    def _side(self, start, skip):
        A = self._A
        n = len(A)
        seen = {start}
        stack = [start]
        while stack:
            u = stack.pop()
            for w in range(n):
                if w == u or w in seen:
                    continue
                m = A[u][w] - (1 if {u, w} == set(skip) else 0)
                if m > 0:
                    seen.add(w)
                    stack.append(w)
        return seen

    # ------------------------------------------------------------------ symmetry
    @cached_property
    def automorphisms(self) -> int:
        return self._aut_v * edge_symmetry(self._A)

    @property
    def symmetry_factor(self) -> Fraction:
        return Fraction(1, self.automorphisms)

    @property
    def canonical_key(self) -> tuple:
        return self._key

    def _sort_key(self):
        return (self.n_vertices, self.valences, self._key)

    def __eq__(self, other):
        if not isinstance(other, Diagram):
            return NotImplemented
        return self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        return (
            f"Diagram(valences={self.valences}, n_external={self.n_external}, "
            f"edges={list(self.edges)}, automorphisms={self.automorphisms})"
        )

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict:
        """Plain-data description (JSON-ready).

        Keys: ``valences`` (per internal node id ``0..V-1``), ``n_external``, ``edges``
        (node-id pairs, legs are ids ``V..V+n-1``), ``n_loops``, ``automorphisms``,
        ``symmetry_factor`` (a string such as ``"1/48"``).

        Examples
        --------
        >>> Diagram.from_edges([(0, 0), (0, 0)]).to_dict()["symmetry_factor"]
        '1/8'
        """
        return {
            "valences": list(self._vals),
            "n_external": self._n_ext,
            "edges": [list(e) for e in self.edges],
            "n_loops": self.n_loops,
            "automorphisms": self.automorphisms,
            "symmetry_factor": str(self.symmetry_factor),
        }

    def to_tikz(self, *, scale: float = 1.0) -> str:
        """TikZ-Feynman code with precomputed coordinates (compiles under plain pdflatex).

        See :func:`pft.symbolic._draw.to_tikz`.
        """
        from pft.symbolic._draw import to_tikz

        return to_tikz(self, scale=scale)

    def to_svg(self, *, size: int = 160) -> str:
        """A self-contained SVG of the same picture as :meth:`to_tikz`.

        See :func:`pft.symbolic._draw.to_svg`.
        """
        from pft.symbolic._draw import to_svg

        return to_svg(self, size=size)
