r"""Symbolic layer: Feynman diagrams, Laplace and Edgeworth expansions, Wick contractions.

This subpackage depends only on the standard library, sympy, networkx and numpy. It never
imports torch (a test checks it in a fresh interpreter).

Conventions (written once here, followed everywhere in pft)
-----------------------------------------------------------
* **Weight.** Integrals are ``Z(n) = ∫ exp(-n S(x)) dx`` over ``x ∈ R^d``. Near a
  non-degenerate minimum ``x*`` with Hessian ``H = ∂²S(x*)`` (positive definite),
  ``S(x* + y) = S* + ½ yᵀ H y + Σ_{k≥3} λ_k[y, …, y] / k!`` with symmetric derivative tensors
  ``λ_k = ∂ᵏ S(x*)``.
* **Vertex.** A vertex of degree ``k`` carries the tensor ``-n λ_k`` (the ``1/k!`` of the Taylor
  series is absorbed by the ``k!`` ways of attaching half-edges; what is left is the
  automorphism factor below).
* **Propagator.** An edge carries ``G / n`` with ``G = H⁻¹``; indices are contracted along edges.
* **Symmetry factor.** A diagram's value is divided by ``|Aut|``, the order of its
  automorphism group acting on half-edges: vertex permutations that preserve the graph, times
  ``m!`` for each bundle of ``m`` parallel edges, times ``2^s s!`` for ``s`` self-loops at one
  vertex. External legs are labelled and held fixed.
* **Orders.** A connected vacuum diagram with ``V`` vertices and ``E`` edges scales as
  ``n^(V-E) = n^(1-L)`` with ``L = E - V + 1`` loops, so

  ``log Z(n) = -n S* + (d/2) log(2π/n) - ½ log det H + Σ_{m≥1} c_m n^(-m)``

  where ``c_m`` is the sum over connected vacuum diagrams with ``L = m + 1`` loops and vertex
  degrees ≥ 3 (degrees up to ``2m + 2``), each vertex ``-λ_k``, each edge ``G``, divided by
  ``|Aut|``.
* **Zero-dimensional theory.** ``∫ dx/√(2π) exp(-x²/2 - Σ_k g_k x^k/k!)``: the coefficient of a
  monomial in the couplings in ``log Z`` is ``Σ ∏(-g_k)/|Aut(Γ)|`` over connected vacuum
  diagrams with that vertex content. This is the identity every enumeration is tested against.
* **Edgeworth.** Standardized cumulants ``κ_r`` (``κ₁ = 0``, ``κ₂ = 1``); probabilists' Hermite
  polynomials ``He``; "order k" keeps the products ``∏ κ_{r_i}`` with ``Σ (r_i - 2) = k``.

Package-internal modules (importable by the rest of pft; users need not): :mod:`pft.symbolic.engine`
documents the engine protocol through which :func:`pft.numeric.laplace` and
:func:`pft.numeric.edgeworth_pdf` evaluate this layer's diagrams and series, and
:mod:`pft.symbolic.drawing` holds the TikZ/SVG sheets and the diagram catalog.

References
----------
.. [1] J. Zinn-Justin, *Quantum Field Theory and Critical Phenomena*, ch. 1-2 (Laplace method,
   Feynman diagrams of the zero-dimensional theory).
.. [2] D. A. Roberts, S. Yaida, B. Hanin, *The Principles of Deep Learning Theory* (2022).
"""

from pft.symbolic._cumulants import cumulants_to_moments, moments_to_cumulants
from pft.symbolic._diagram import Diagram
from pft.symbolic._edgeworth import EdgeworthExpansion, EdgeworthTerm, edgeworth
from pft.symbolic._enumerate import correlator_diagrams, vacuum_diagrams
from pft.symbolic._laplace import laplace_expansion
from pft.symbolic._laplace_results import CorrelatorExpansion, LaplaceExpansion
from pft.symbolic._parse import parse_expression
from pft.symbolic._plan import ContractionPlan, Operand, contraction_plan
from pft.symbolic._terms import DiagramTerm
from pft.symbolic._wick import gaussian_moment, wick_pairings
from pft.symbolic._zero_dim import zero_dimensional_series

__all__: list[str] = [
    "Diagram",
    "vacuum_diagrams",
    "correlator_diagrams",
    "zero_dimensional_series",
    "EdgeworthExpansion",
    "EdgeworthTerm",
    "cumulants_to_moments",
    "edgeworth",
    "gaussian_moment",
    "moments_to_cumulants",
    "parse_expression",
    "wick_pairings",
    "ContractionPlan",
    "CorrelatorExpansion",
    "DiagramTerm",
    "LaplaceExpansion",
    "Operand",
    "contraction_plan",
    "laplace_expansion",
]
