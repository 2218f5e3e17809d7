"""What every ``pft`` command shares: the parser class, argument types, the error line.

Every refused argument gives one line on stderr, ``pft <command>: error: `--flag` must be
<what>; got <what came in>.``, and exit status 2 -- whether argparse refuses it (a type below, an
unknown option, a missing argument) or the command does (:class:`~pft.errors.InputError`).
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable

from pft._validate import check_float, check_int, check_seed
from pft.errors import InputError

__all__ = [
    "Parser",
    "integer",
    "number",
    "seed",
    "choice",
    "numbers",
    "int_list",
    "parse_int_list",
    "write_outputs",
    "require_torchrun",
    "one_line",
]


_PREFIX = re.compile(r"^argument ([^:]+): (`.*)$", re.S)
_CHOICE = re.compile(r"^argument ([^:]+): invalid choice: (.*) \(choose from (.*)\)$", re.S)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors do not exit: they raise :class:`~pft.errors.InputError`
    with the message in pft's format and the refusing (sub)parser's ``prog`` as ``exc.prog``
    (the types below already phrase the message; argparse's own structural messages are kept
    and point to ``--help``)."""

    def error(self, message: str):  # type: ignore[override]
        m = _PREFIX.match(message)
        c = _CHOICE.match(message)
        if m:  # "argument --draws: `--draws` must be ..." from a type below
            message = m.group(2)
        elif c:  # an unknown command
            listed = ", ".join(repr(v.strip(" '")) for v in c.group(3).split(","))
            message = f"`{c.group(1)}` must be one of {listed}; got {c.group(2)}."
        else:
            message = f"{message.rstrip('.')}; see `{self.prog} --help`."
        exc = InputError(message)
        exc.prog = self.prog  # "pft degrade": whose usage went wrong
        raise exc


def _typed(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` whose :class:`InputError` reaches :meth:`Parser.error` as it is."""

    def convert(text: str) -> Any:
        try:
            return check(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _parse(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # the check names it: "... ; got 'x'."


def integer(flag: str, *, minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """``type=`` of an integer option: ``check_int`` under the option's name."""
    return _typed(lambda text: check_int(_parse(text, int), flag, minimum=minimum, maximum=maximum))


def number(flag: str, **bounds: Any) -> Callable[[str], float]:
    """``type=`` of a real option: ``check_float`` (finite) under the option's name."""
    return _typed(lambda text: check_float(_parse(text, float), flag, **bounds))


def seed(flag: str = "--seed") -> Callable[[str], int]:
    """``type=`` of ``--seed``: a non-negative integer below 2**63 (``check_seed``)."""
    return _typed(lambda text: check_seed(_parse(text, int), flag))


def choice(flag: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """``type=`` of an option with a fixed set of values (use ``metavar="{a,b}"`` for help)."""

    def check(text: str) -> str:
        if text not in choices:
            raise InputError(f"`{flag}` must be one of {', '.join(repr(c) for c in choices)}; got {text!r}.")
        return text

    return _typed(check)


def numbers(flag: str, kind: type = float) -> Callable[[str], list]:
    """``type=`` of a comma-separated list of numbers (``kind`` int or float; empty items skipped)."""
    what = "integers" if kind is int else "numbers"

    def check(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"`{flag}` must be comma-separated {what}; got {text!r}.") from None

    return _typed(check)


def parse_int_list(text: str, flag: str) -> list[int]:
    """``"16,32,64"`` or ranges ``"2:32"`` (inclusive), ``"2:32:2"`` (step), ``"2:64:x2"``
    (doubling) as a list of positive integers; :class:`~pft.errors.InputError` naming ``flag``.

    Examples
    --------
    >>> parse_int_list("2:9:3,20", "--depths"), parse_int_list("2:32:x2", "--depths")
    ([2, 5, 8, 20], [2, 4, 8, 16, 32])
    """
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = part.split(":")
                if len(bits) not in (2, 3):
                    raise ValueError
                lo, hi = int(bits[0]), int(bits[1])
                step = bits[2] if len(bits) == 3 else "1"
                if step.startswith("x"):
                    factor = int(step[1:])
                    if factor < 2 or lo < 1:
                        raise ValueError
                    v = lo
                    while v <= hi:
                        out.append(v)
                        v *= factor
                else:
                    if int(step) < 1:
                        raise ValueError
                    out.extend(range(lo, hi + 1, int(step)))
            else:
                out.append(int(part))
        except ValueError:
            raise InputError(
                f"`{flag}` must be integers like 16,32 or ranges 2:32, 2:32:2, 2:64:x2; got {text!r}."
            ) from None
    if not out or min(out) < 1:
        raise InputError(f"`{flag}` must list positive integers; got {text!r}.")
    return out


def int_list(flag: str) -> Callable[[str], list[int]]:
    """``type=`` of a list of positive integers with ranges (:func:`parse_int_list`)."""
    return _typed(lambda text: parse_int_list(text, flag))


def write_outputs(result: Any, *, json_out: str | None = None, plot: str | None = None) -> None:
    """Write ``result`` as JSON and its plot where asked (both atomic), saying where."""
    if json_out:
        result.to_json(json_out)
        print(f"json: {json_out}")
    if plot:
        result.plot(plot)
        print(f"plot: {plot}")


def require_torchrun() -> None:
    """``--distributed`` needs the environment torchrun sets up; refuse before any work."""
    from pft.distributed import torchrun_missing

    missing = torchrun_missing()
    if missing:
        raise InputError(
            f"`--distributed` runs under torchrun (e.g. torchrun --nproc-per-node 2 -m pft ...), "
            f"which sets {', '.join(missing)}; none of that is set here. Drop --distributed to run in one process."
        )


def one_line(text: str) -> str:
    return " ".join(text.split())
