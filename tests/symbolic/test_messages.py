"""Refusals of the symbolic layer read in the one message format (docs/design.md): the whole
message pinned, so a rewording that drops the argument's name or what came in fails here."""

import re

import numpy as np
import pytest
import sympy

from pft.errors import InputError
from pft.symbolic import contraction_plan, cumulants_to_moments, gaussian_moment, parse_expression


def _exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


def test_a_formula_over_the_length_limit_names_the_limit_and_the_length():
    with pytest.raises(InputError, match=_exactly("`text` must be at most 10000 characters long; got 10001.")):
        parse_expression("x" * 10001)


def test_contraction_plan_of_something_that_is_not_a_diagram():
    with pytest.raises(InputError, match=_exactly(
            "`diagram` must be a pft.symbolic.Diagram (with .graph and .symmetry_factor); got str.")):
        contraction_plan("theta")


def test_cumulant_tensors_must_hold_numbers():
    with pytest.raises(InputError, match=_exactly("`cumulants[1]` must hold numbers; got dtype <U1.")):
        cumulants_to_moments([np.zeros(2), np.array([["a", "b"], ["c", "d"]])])


def test_a_non_square_sympy_covariance():
    with pytest.raises(InputError, match=_exactly("`cov` must be square; got a 2x3 sympy Matrix.")):
        gaussian_moment(sympy.zeros(2, 3), [0, 1])
