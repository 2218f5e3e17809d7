"""Grids of (activation, width, depth) cells run into an append-only, resumable JSON-lines store."""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pft._deprecation import renamed_keywords, warn_renamed
from pft._results import JsonResult
from pft._validate import check_bool, check_choice, check_int, check_seed
from pft.distributed import reducer
from pft.errors import HeavyTailWarning, InputError
from pft.scaling._activations import resolve_activation
from pft.scaling._critical import critical_point
from pft.scaling._ensemble import MLPConfig, sample_ensemble
from pft.scaling._store import append_record, read_store, share_from_rank0
from pft._text import table
from pft.scaling._theory import finite_width_theory

__all__ = ["Study", "StudyResult", "scale_invariant_exact_kurtosis"]

_KEYS = {"activation": "activation", "activations": "activation", "width": "width", "widths": "width",
         "depth": "depth", "depths": "depth", "C_W": "C_W", "C_b": "C_b"}


def scale_invariant_exact_kurtosis(slopes, width, depth) -> float:
    """Exact output excess kurtosis of a scale-invariant MLP with ``C_b = 0`` (any ``C_W``).

    ``3[(1 + c/n)^(L−1) − 1]`` with ``c = 3A₄/A₂² − 1``, ``A_p = (a₊^p + a₋^p)/2`` (ReLU: c = 5).

    Notes
    -----
    With ``C_b = 0`` each layer multiplies the conditional variance by ``(C_W/n) Σ_j σ(u_j)²``,
    ``u_j`` iid standard normal, independently of the past; its second moment is
    ``(C_W A₂)² (1 + c/n)``, so ``E G² / (E G)² = (1 + c/n)^(L−1)``.

    Examples
    --------
    >>> round(scale_invariant_exact_kurtosis((1.0, 0.0), 10, 3), 12)
    3.75
    """
    a, b = slopes
    A2, A4 = (a**2 + b**2) / 2, (a**4 + b**4) / 2
    c = 3 * A4 / A2**2 - 1
    return 3.0 * ((1 + c / width) ** (depth - 1) - 1)


def _as_list(name, value):
    vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not vals:
        raise InputError(f"grid entry `{name}` is empty.")
    return vals


def _theory_key(cell: dict) -> tuple:
    """What a cell's theory depends on: activation, C_W, C_b and the input x (1 unless recorded)."""
    return cell["activation"], cell["C_W"], cell["C_b"], cell.get("input", 1.0)


def _cell_seed(key: dict) -> int:
    text = json.dumps(key, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class StudyResult(JsonResult):
    """One row per grid cell: the measured and predicted excess kurtosis and second moment.

    Each row is a dict with the cell's ``key`` (activation, width, depth, C_W, C_b, networks,
    method, seed; ``input`` where it is not 1, see :class:`Study`) and ``result``:
    ``excess_kurtosis`` / ``_se`` (Rao–Blackwellised), ``raw_excess_kurtosis`` / ``_se``,
    ``second_moment`` / ``_se``, ``heavy_tail`` (the estimate's tail diagnostic fired),
    ``theory_K``, ``theory_second_moment`` (``K + K1/n``), ``leading_order`` (``3V/(nK²)``),
    ``exact`` (scale-invariant activations with C_b = 0, else null).
    """

    _json_options = {"sort_keys": True}

    rows: tuple

    def table(self) -> str:
        """An aligned text table of all cells."""
        body = []
        for r in self.rows:
            k, v = r["key"], r["result"]
            exact = "" if v["exact"] is None else f"{v['exact']:.4g}"
            body.append([
                k["activation"], f"{k['C_W']:g}", f"{k['C_b']:g}", str(k["width"]), str(k["depth"]),
                f"{k['depth'] / k['width']:.3g}",
                f"{v['excess_kurtosis']:.4g} ± {v['excess_kurtosis_se']:.2g}" + (" !" if v["heavy_tail"] else ""),
                f"{v['leading_order']:.4g}", exact,
                f"{v['second_moment']:.4g} ± {v['second_moment_se']:.2g}", f"{v['theory_second_moment']:.4g}",
            ])
        out = table(["activation", "C_W", "C_b", "n", "L", "L/n", "excess kurtosis", "leading order", "exact",
                      "E z^2", "K + K1/n"], body)
        if any(r["result"]["heavy_tail"] for r in self.rows):
            out += "\n! heavy tails: a few networks dominate this estimate; its error bar is optimistic"
        return out

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict) -> "StudyResult":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> res = Study({"activation": "relu", "width": [8], "depth": [2]}, n_networks=100, progress=False).run()
        >>> StudyResult.from_json(res.to_json()) == res
        True
        """
        return cls(tuple(dict(r) for r in d["rows"]))

    def plot(self, path=None, *, ax=None):
        """Measured excess kurtosis against ``L/n`` and against the leading-order prediction.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (the format from the extension).
        ax : matplotlib Axes, or a sequence of them, optional
            Draw onto these: one Axes gets the first panel (against ``L/n``); a sequence gets the
            two panels in order (extra Axes are left untouched). Default: a new two-panel figure.

        Returns
        -------
        matplotlib.figure.Figure
            Not registered with pyplot (nothing leaks, no backend is switched).

        Examples
        --------
        >>> res = Study({"activation": "relu", "width": [8], "depth": [2, 3]}, n_networks=200, progress=False).run()
        >>> type(res.plot()).__name__
        'Figure'
        """
        from pft.scaling._plot import plot_study

        return plot_study(self.rows, path, ax=ax)


class Study:
    """A grid of (activation, width, depth[, C_W, C_b]) cells, each an ensemble plus its theory.

    Parameters
    ----------
    grid : mapping
        ``activation``, ``width``, ``depth`` (a value or a list each; plural keys work too) and
        optionally ``C_W``, ``C_b`` (default: the activation's critical point).
    n_networks : int
        Networks per cell (was ``networks``, still accepted with a deprecation warning; the store
        keeps the name ``networks`` in each cell's key).
    method : {"exact", "weights"}
    seed : int, default 0
        Base seed; each cell's seed is a hash of the cell (so cells are independent of order and
        of interruptions).
    device : str
    progress : bool

    Attributes
    ----------
    result_ : StudyResult
        Set by :meth:`run`; :meth:`table` and :meth:`plot` read it.

    Notes
    -----
    Every cell feeds one input ``x = 1`` with ``n₀ = 1``, so ``K⁽¹⁾ = C_b + C_W``; the theory
    columns use the same ``K⁽¹⁾``. Each finished cell is appended to the store as one JSON line in one ``write`` followed by
    ``fsync``, under an advisory lock; a run killed at any point loses at most the cell in flight,
    and a torn last line is cut off on resume (a complete one is never removed). Finished cells are
    never recomputed. A store is checked from its first bytes before it is touched (any other file
    is refused and left as it is), holds one ``networks``/``method``/``seed`` setting (a study
    with another is refused), and may be shared by two writers (a cell both finished is read once). ``run(distributed=True)`` splits each
    cell's networks over the ranks of a ``torch.distributed`` group with the same numbers.

    At a default critical point of the K* > 0 class (GELU, SWISH) the input is
    ``x = √((K* − C_b)/C_W)`` instead of 1, so that ``K⁽¹⁾ = K*`` and the kernel stays at its
    fixed point (from ``x = 1`` it would drift for hundreds of layers); the cell's key records it
    as ``input``.

    Examples
    --------
    >>> res = Study({"activation": "relu", "width": [8, 16], "depth": [2, 3]}, n_networks=500,
    ...             progress=False).run()
    >>> len(res.rows), res.rows[0]["key"]["width"]
    (4, 8)
    """

    @renamed_keywords(networks="n_networks")
    def __init__(self, grid, *, n_networks=20000, method="exact", seed=0, device="cpu", progress=True):
        if not hasattr(grid, "items"):
            raise InputError(f"`grid` must be a mapping like {{'activation': 'relu', 'width': [16, 32], "
                             f"'depth': [2, 4]}}; got {type(grid).__name__}.")
        norm = {}
        for name, value in grid.items():
            if name not in _KEYS:
                raise InputError(f"`grid` key {name!r} is not one of {sorted(set(_KEYS.values()))}.")
            norm[_KEYS[name]] = _as_list(name, value)
        for need in ("activation", "width", "depth"):
            if need not in norm:
                raise InputError(f"`grid` needs {need!r}; got keys {sorted(grid)}.")
        self.grid = norm
        self.n_networks = check_int(n_networks, "n_networks", minimum=2)
        self.method = check_choice(method, "method", ("exact", "weights"))
        self.seed = check_seed(seed)
        self.device = device
        self.progress = check_bool(progress, "progress")
        self._cells = self._make_cells()

    def _make_cells(self) -> list[dict]:
        cells = []
        C_Ws, C_bs = self.grid.get("C_W", [None]), self.grid.get("C_b", [None])
        for act, cw, cb in itertools.product(self.grid["activation"], C_Ws, C_bs):
            name = resolve_activation(act).name
            x = None  # the input; None: x = 1
            if cw is None or cb is None:
                crit = critical_point(name)
                if not crit.exists:
                    raise InputError(f"activation {name!r} has no critical point ({crit.reason}); "
                                     "give `C_W` and `C_b` in the grid.")
                if cw is None and cb is None and crit.universality == "K*>0":
                    x = ((crit.K_star - crit.C_b) / crit.C_W) ** 0.5  # K⁽¹⁾ = K*: the kernel stays there
                cb = crit.C_b if cb is None else cb
                cw = crit.C_W if cw is None else cw
            for n, L in itertools.product(self.grid["width"], self.grid["depth"]):
                MLPConfig(name, n, L, C_W=cw, C_b=cb)  # validates
                cells.append({"activation": name, "width": int(n), "depth": int(L), "C_W": float(cw),
                              "C_b": float(cb), "networks": self.n_networks, "method": self.method, "seed": self.seed})
                if x is not None:
                    cells[-1]["input"] = float(x)
        return cells

    @property
    def cells(self) -> list[dict]:
        return [dict(c) for c in self._cells]

    def _run_cell(self, key: dict, theory, distributed=False, group=None) -> dict:
        cfg = MLPConfig(key["activation"], key["width"], key["depth"], C_W=key["C_W"], C_b=key["C_b"])
        ens = sample_ensemble(cfg, key["networks"], [key.get("input", 1.0)], method=key["method"], seed=_cell_seed(key),
                              device=self.device, progress=False, distributed=distributed, group=group)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", HeavyTailWarning)
            ek, ekse = ens.excess_kurtosis()
            heavy = any(issubclass(w.category, HeavyTailWarning) for w in caught)
            rk, rkse = ens.excess_kurtosis(rao_blackwell=False)
            m2, m2se = ens.moment(2)
        n, L = key["width"], key["depth"]
        act = resolve_activation(key["activation"])
        exact = None
        if act.slopes is not None and key["C_b"] == 0.0:
            exact = scale_invariant_exact_kurtosis(act.slopes, n, L)
        return {
            "excess_kurtosis": float(ek[0]), "excess_kurtosis_se": float(ekse[0]),
            "raw_excess_kurtosis": float(rk[0]), "raw_excess_kurtosis_se": float(rkse[0]),
            "second_moment": float(m2[0]), "second_moment_se": float(m2se[0]), "heavy_tail": heavy,
            "theory_K": float(theory.K[L - 1]),
            "theory_second_moment": float(theory.second_moment(n)[L - 1]),
            "leading_order": float(theory.excess_kurtosis(n)[L - 1]),
            "exact": exact,
        }

    def run(self, store=None, *, distributed=False, group=None) -> StudyResult:
        """Run every cell not yet in ``store`` (a .jsonl path; None keeps results in memory).

        Parameters
        ----------
        store : str or Path, optional
        distributed : bool
            Under ``torchrun`` (an initialised ``torch.distributed`` group): every cell's networks
            are split over the ranks (:func:`sample_ensemble` with ``distributed=True``) and its
            moments reduced; rank 0 alone reads and appends to ``store``. Every rank must call
            ``run`` with the same study, and every rank returns the same result.
        group : torch.distributed.ProcessGroup, optional
            The ranks to split over (default: the whole world).

        Returns
        -------
        StudyResult
            The rows of this grid, in grid order, read from the store when it had them.

        Notes
        -----
        Splitting each cell rather than dealing whole cells to ranks keeps the ranks equally busy
        (cells differ by orders of magnitude in cost, and a one-cell grid still parallelises), and
        since seeds belong to blocks of networks, a cell's numbers equal the one-process run's to
        rounding — so a store may be filled by runs on any number of ranks.
        """
        from tqdm.auto import tqdm

        red = reducer(distributed, group)
        path = None if store is None else Path(store)
        config = {"networks": self.n_networks, "method": self.method, "seed": self.seed}  # the store's names
        done = {} if path is None or red.rank != 0 else read_store(path, config)
        # rank 0 owns the store: it tells the others which cells are finished, and their records
        known = share_from_rank0(red, [done.get(json.dumps(c, sort_keys=True)) for c in self._cells])
        done = {json.dumps(c, sort_keys=True): rec for c, rec in zip(self._cells, known) if rec is not None}
        theories: dict = {}
        rows = []
        todo = [c for c in self._cells if json.dumps(c, sort_keys=True) not in done]
        bar = tqdm(total=len(todo), disable=not self.progress or red.rank != 0, unit="cell", desc="scaling study")
        try:
            for key in self._cells:
                skey = json.dumps(key, sort_keys=True)
                if skey in done:
                    rows.append(done[skey])
                    continue
                tkey = _theory_key(key)
                if tkey not in theories:
                    depth = max(c["depth"] for c in self._cells if _theory_key(c) == tkey)
                    theories[tkey] = finite_width_theory(key["activation"], depth, C_W=key["C_W"], C_b=key["C_b"],
                                                         first_kernel=key["C_b"] + key["C_W"] * tkey[3] ** 2)
                record = {"key": key, "result": self._run_cell(key, theories[tkey], distributed, group)}
                if path is not None and red.rank == 0:
                    append_record(path, record)
                done[skey] = record
                rows.append(record)
                bar.update(1)
        finally:
            bar.close()
        self.result_ = StudyResult(tuple(rows))
        return self.result_

    def _result(self) -> StudyResult:
        if not hasattr(self, "result_"):
            from pft.errors import NotFittedError

            raise NotFittedError("call Study.run() before table() or plot().")
        return self.result_

    def table(self) -> str:
        """The aligned table of the last :meth:`run`."""
        return self._result().table()

    @property
    def networks(self) -> int:
        """Deprecated name of :attr:`n_networks`."""
        warn_renamed("Study.networks", "Study.n_networks")
        return self.n_networks

    def plot(self, path=None, *, ax=None):
        """The figure of the last :meth:`run` (see :meth:`StudyResult.plot`); also written to
        ``path`` when given."""
        return self._result().plot(path, ax=ax)
