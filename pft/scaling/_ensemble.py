"""Ensembles of randomly initialised MLPs: weight by weight, or from each layer's exact law."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from pft._deprecation import renamed_keywords
from pft._device import torch_device
from pft._results import JsonResult
from pft._validate import check_choice, check_float, check_int, check_seed
from pft.distributed import LocalReducer, Reducer, reducer
from pft.errors import InputError
from pft.scaling._activations import resolve_activation
from pft.scaling._estimators import jackknife, warn_if_heavy
from pft.scaling._samplers import chunk_seed, default_chunk, exact_chunk, weights_chunk
from pft._text import table

__all__ = ["MLPConfig", "EnsembleResult", "sample_ensemble"]


@dataclass(frozen=True)
class MLPConfig:
    """A fully connected network at initialisation in the conventions of PDLT.

    ``z⁽¹⁾ = b + W x`` (``W`` is ``n × input_dim``, variance ``C_W / input_dim``),
    ``z⁽ˡ⁺¹⁾ = b + W σ(z⁽ˡ⁾)`` with ``W ~ N(0, C_W / n)``, ``b ~ N(0, C_b)``; layers 1 … L − 1
    have ``width`` neurons, the output layer L has ``output_width``.

    Examples
    --------
    >>> MLPConfig("relu", 64, 8, C_W=2.0, C_b=0.0).depth
    8
    """

    activation: object
    width: int
    depth: int
    C_W: float = field(kw_only=True)
    C_b: float = field(kw_only=True)
    input_dim: int = 1
    output_width: int = 1

    def __post_init__(self):
        resolve_activation(self.activation)
        check_int(self.width, "width", minimum=1)
        check_int(self.depth, "depth", minimum=1)
        object.__setattr__(self, "C_W", check_float(self.C_W, "C_W", minimum=0, exclusive_minimum=True))
        object.__setattr__(self, "C_b", check_float(self.C_b, "C_b", minimum=0))
        check_int(self.input_dim, "input_dim", minimum=1)
        check_int(self.output_width, "output_width", minimum=1)

    @property
    def activation_name(self) -> str:
        return resolve_activation(self.activation).name

    def to_dict(self) -> dict:
        return {
            "activation": self.activation_name,
            "width": self.width,
            "depth": self.depth,
            "C_W": self.C_W,
            "C_b": self.C_b,
            "input_dim": self.input_dim,
            "output_width": self.output_width,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "MLPConfig":
        """Inverse of :meth:`to_dict` (an activation given as a callable comes back by its name,
        which only a built-in activation resolves).

        Examples
        --------
        >>> cfg = MLPConfig("relu", 64, 8, C_W=2.0, C_b=0.0)
        >>> MLPConfig.from_dict(cfg.to_dict()) == cfg
        True
        """
        return cls(d["activation"], int(d["width"]), int(d["depth"]), C_W=float(d["C_W"]), C_b=float(d["C_b"]),
                   input_dim=int(d["input_dim"]), output_width=int(d["output_width"]))


@dataclass(frozen=True)
class EnsembleResult(JsonResult):
    """Outputs of an ensemble of networks and the conditional covariance of their last layer.

    Attributes
    ----------
    config : MLPConfig
    method : str
    seed : int
    inputs : ndarray, shape (k, input_dim)
    outputs : ndarray, shape (local networks, output_width, k)
        This process's networks: all of them, or under ``distributed=True`` this rank's
        contiguous share, global networks ``network_offset … network_offset + len(outputs) − 1``.
    conditional_covariance : ndarray, shape (local networks, k, k)
        ``G = C_b + (C_W/n) σ(z⁽ᴸ⁻¹⁾)ᵀσ(z⁽ᴸ⁻¹⁾)``: given layer L − 1 the outputs are iid
        ``N(0, G)`` (``G = K⁽¹⁾`` when L = 1).
    network_offset : int
        Global index of ``outputs[0]`` (0 on one process).
    total_networks : int or None
        Networks over all ranks (None: ``len(outputs)``, one process).
    reducer : Reducer
        How sums travel between ranks. With a distributed one, :meth:`moment`,
        :meth:`excess_kurtosis`, :meth:`to_dict` and ``str`` are collective: every rank must call
        them, in the same order, and every rank gets the same all-rank answer.
    summary : dict or None
        Set only on a result loaded from JSON written without its samples
        (:meth:`from_dict`): the moments as they were written. Such a result has no networks
        (``outputs`` is empty): :meth:`to_dict` and ``str`` show the summary, while
        :meth:`moment` and :meth:`excess_kurtosis` need the samples.
    """

    config: MLPConfig
    method: str
    seed: int
    inputs: np.ndarray = field(repr=False)
    outputs: np.ndarray = field(repr=False)
    conditional_covariance: np.ndarray = field(repr=False)
    network_offset: int = 0
    total_networks: int | None = None
    reducer: Reducer = field(default_factory=LocalReducer, repr=False, compare=False)
    summary: dict | None = field(default=None, repr=False, compare=False)

    @property
    def n_networks(self) -> int:
        """Networks over all ranks (the count the moments average over)."""
        return self.outputs.shape[0] if self.total_networks is None else self.total_networks

    def _jackknife(self, stat, columns, groups):
        return jackknife(stat, columns, groups, reducer=self.reducer, offset=self.network_offset,
                         total=self.n_networks)

    def _warn_if_heavy(self, x, what, hint):
        warn_if_heavy(x, what, hint, stacklevel=4, reducer=self.reducer)

    def _G(self) -> np.ndarray:
        k = self.outputs.shape[2]
        return self.conditional_covariance[:, np.arange(k), np.arange(k)].astype(np.float64)  # float64 accumulation

    def _need_samples(self, what: str) -> None:
        if self.summary is not None:
            raise InputError(
                f"`{what}` needs the networks' samples, and this result was loaded from JSON written without "
                "them; write it with to_json(include_samples=True), or draw the ensemble again."
            )

    @renamed_keywords(groups="n_groups")
    def moment(self, p: int, *, rao_blackwell: bool = True, n_groups: int = 100):
        """``E z^p`` of one output unit, per input, with a jackknife standard error (over all ranks).

        Parameters
        ----------
        p : int
            Order, ≥ 1.
        rao_blackwell : bool
            Average the exact conditional moment ``(p − 1)!! G^{p/2}`` (even p; odd moments are 0
            by symmetry) instead of raw ``z^p`` — the same mean, a smaller variance.
        n_groups : int
            Jackknife groups: contiguous runs of networks by global index, so a distributed
            ensemble gets the one-process groups and standard error (was ``groups``, still
            accepted with a deprecation warning).

        Returns
        -------
        estimate, se : ndarray, shape (k,)

        Notes
        -----
        Given layer L − 1 the output is ``N(0, G)``, so ``E z^p = (p−1)!! E G^{p/2}`` for even p.
        """
        self._need_samples("moment")
        p = check_int(p, "p", minimum=1)
        n_groups = check_int(n_groups, "n_groups", minimum=1)
        if rao_blackwell:
            k = self.outputs.shape[2]
            if p % 2:
                return np.zeros(k), np.zeros(k)
            col = math.prod(range(p - 1, 0, -2)) * self._G() ** (p // 2)
            hint = "More networks are needed."
        else:
            col = (self.outputs.astype(np.float64) ** p).mean(axis=1)
            hint = "Use the Rao–Blackwellised estimate (rao_blackwell=True) or more networks."
        self._warn_if_heavy(col, f"E z^{p}", hint)
        return self._jackknife(lambda m: m, [col], n_groups)

    @renamed_keywords(groups="n_groups")
    def excess_kurtosis(self, *, rao_blackwell: bool = True, n_groups: int = 100):
        """Excess kurtosis ``E z⁴ / (E z²)² − 3`` of one output unit, per input, with a jackknife se.

        Parameters
        ----------
        rao_blackwell : bool
            From the conditional variance ``G`` (see :meth:`moment`) instead of raw ``z⁴``.
        n_groups : int
            Jackknife groups, as in :meth:`moment` (was ``groups``).

        Returns
        -------
        estimate, se : ndarray, shape (k,)

        Notes
        -----
        Rao–Blackwellised: ``3 E G² / (E G)² − 3`` (exact, since ``z | G ~ N(0, G)``).
        """
        self._need_samples("excess_kurtosis")
        n_groups = check_int(n_groups, "n_groups", minimum=1)
        if rao_blackwell:
            G = self._G()
            num, den = G**2, G
            self._warn_if_heavy(num, "excess kurtosis (E G²)", "More networks are needed.")
            return self._jackknife(lambda a, b: 3 * a / b**2 - 3, [num, den], n_groups)
        out = self.outputs.astype(np.float64)
        z2 = (out**2).mean(axis=1)
        z4 = (out**4).mean(axis=1)
        self._warn_if_heavy(z4, "excess kurtosis (raw E z⁴)", "Use rao_blackwell=True or more networks.")
        return self._jackknife(lambda a, b: a / b**2 - 3, [z4, z2], n_groups)

    def to_dict(self, *, include_samples: bool = False) -> dict:
        """The configuration, the second moment and the excess kurtosis with their standard errors;
        with ``include_samples`` also this rank's networks (``inputs``, ``outputs``,
        ``conditional_covariance``, ``network_offset``), from which :meth:`from_dict` rebuilds
        the whole result."""
        if self.summary is not None:
            return dict(self.summary)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m2, m2se = self.moment(2)
            ek, ekse = self.excess_kurtosis()
        d = {
            "config": self.config.to_dict(),
            "method": self.method,
            "seed": self.seed,
            "n_networks": self.n_networks,
            "second_moment": m2.tolist(),
            "second_moment_se": m2se.tolist(),
            "excess_kurtosis": ek.tolist(),
            "excess_kurtosis_se": ekse.tolist(),
        }
        if include_samples:  # this rank's networks only
            d["network_offset"] = self.network_offset
            d["inputs"] = self.inputs.tolist()
            d["outputs"] = self.outputs.tolist()
            d["conditional_covariance"] = self.conditional_covariance.tolist()
        return d

    def to_json(self, path=None, *, include_samples: bool = False, **kwargs) -> str:
        """JSON text of :meth:`to_dict` (also written to ``path`` when given, atomically)."""
        text = json.dumps(self.to_dict(include_samples=include_samples), **kwargs)
        if path is not None:
            from pft._output import atomic_write, check_output

            atomic_write(check_output(path, name="path"), text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> "EnsembleResult":
        """Inverse of :meth:`to_dict`.

        With the samples (``to_dict(include_samples=True)``) the result is whole again: its
        moments are recomputed from the same networks. Without them it holds the written
        summary only (see ``summary``).

        Examples
        --------
        >>> res = sample_ensemble(MLPConfig("relu", 8, 2, C_W=2.0, C_b=0.0), 200, [1.0], progress=False)
        >>> whole = EnsembleResult.from_json(res.to_json(include_samples=True))
        >>> whole.to_dict() == res.to_dict(), whole.outputs.shape
        (True, (200, 1, 1))
        >>> EnsembleResult.from_json(res.to_json()).to_dict() == res.to_dict()
        True
        """
        config = MLPConfig.from_dict(d["config"])
        k = len(d["second_moment"])
        if "outputs" not in d:
            empty = np.empty((0, config.output_width, k))
            return cls(config, d["method"], int(d["seed"]), np.empty((0, config.input_dim)), empty,
                       np.empty((0, k, k)), total_networks=int(d["n_networks"]), summary=dict(d))
        outputs = np.asarray(d["outputs"], dtype=np.float64).reshape(-1, config.output_width, k)
        total = int(d["n_networks"])
        return cls(config, d["method"], int(d["seed"]),
                   np.asarray(d["inputs"], dtype=np.float64).reshape(k, config.input_dim), outputs,
                   np.asarray(d["conditional_covariance"], dtype=np.float64).reshape(-1, k, k),
                   network_offset=int(d["network_offset"]),
                   total_networks=None if total == outputs.shape[0] else total)

    def __str__(self) -> str:
        if self.summary is not None:
            s, c = self.summary, self.config
            head = (f"ensemble: {c.activation_name}, n={c.width}, L={c.depth}, C_W={c.C_W:g}, C_b={c.C_b:g}, "
                    f"{s['n_networks']} networks ({self.method}; loaded without samples)")
            rows = [[str(a), f"{s['second_moment'][a]:.5g} ± {s['second_moment_se'][a]:.2g}",
                     f"{s['excess_kurtosis'][a]:.5g} ± {s['excess_kurtosis_se'][a]:.2g}"]
                    for a in range(len(s["second_moment"]))]
            return head + "\n" + table(["input", "E z^2", "excess kurtosis (RB)"], rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m2, m2se = self.moment(2)
            ek, ekse = self.excess_kurtosis()
            rk, rkse = self.excess_kurtosis(rao_blackwell=False)
        c = self.config
        head = (f"ensemble: {c.activation_name}, n={c.width}, L={c.depth}, C_W={c.C_W:g}, C_b={c.C_b:g}, "
                f"{self.n_networks} networks ({self.method})")
        rows = [[str(a), f"{m2[a]:.5g} ± {m2se[a]:.2g}", f"{ek[a]:.5g} ± {ekse[a]:.2g}", f"{rk[a]:.5g} ± {rkse[a]:.2g}"]
                for a in range(len(m2))]
        return head + "\n" + table(["input", "E z^2", "excess kurtosis (RB)", "excess kurtosis (raw)"], rows)


def _check_same_on_all_ranks(red: Reducer, **args) -> None:
    """Ranks must draw from one call; a fingerprint of its arguments is gathered and compared."""
    text = json.dumps(args, sort_keys=True, default=str)
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "little")  # exact in float64
    prints = red.gather_rows(np.array([[float(digest)]]))[:, 0]
    if np.any(prints != prints[0]):
        differ = [int(r) for r in np.flatnonzero(prints != prints[0])]
        raise InputError(
            f"`sample_ensemble(distributed=True)` was called with different arguments on ranks {differ} than on "
            "rank 0 (config, n_networks, inputs, method, seed, chunk, dtype must agree); pass the same ones everywhere."
        )


def sample_ensemble(config: MLPConfig, n_networks, inputs, *, method="exact", seed=0, device="cpu",
                    dtype=None, chunk=None, progress=True, distributed=False, group=None) -> EnsembleResult:
    """Draw an ensemble of independently initialised networks and return their outputs.

    Parameters
    ----------
    config : MLPConfig
    n_networks : int
    inputs : array_like, shape (k, input_dim) or (input_dim,)
    method : {"exact", "weights"}
        ``"weights"`` draws every weight and bias (a batched matmul over networks, O(n²k) per layer
        and network). ``"exact"`` draws each layer from its exact law given the previous one: the
        ``n`` preactivations of layer ℓ + 1 are iid ``N(0, C_b + (C_W/n) σ(z⁽ˡ⁾)ᵀσ(z⁽ˡ⁾))`` over
        inputs — O(n k²) per layer and network. Both give the same distribution.
    seed : int, default 0
        Same seed, chunk, device and dtype → same numbers, on any number of ranks.
    device : str or torch.device
        Where the networks are drawn (default ``"cpu"``; None also means the CPU).
    dtype : torch.dtype, optional
        Default float64.
    chunk : int, optional
        Networks per block: block ``b`` holds networks ``b·chunk …`` and draws from its own
        generator, seeded by ``(seed, b)``. Default: at most 1024, fewer where a tensor would pass
        ~32 MiB; it depends on the arguments only, never on the number of ranks.
    progress : bool
        tqdm bar over networks (rank 0's share only, under ``distributed=True``).
    distributed : bool
        Split the networks over the ranks of a ``torch.distributed`` process group (e.g. under
        ``torchrun``): rank r of W draws the contiguous blocks ``⌊Br/W⌋ … ⌊B(r+1)/W⌋ − 1`` of the
        ``B`` blocks. Every rank must make the same call. Ranks beyond ``B`` draw nothing: for
        more ranks than blocks pass a smaller ``chunk`` (and the same one to a one-process run that
        should reproduce it).
    group : torch.distributed.ProcessGroup, optional
        The group to split over (default: the whole world).

    Returns
    -------
    EnsembleResult
        Under ``distributed=True`` its ``outputs`` hold this rank's networks only, while its
        moments and standard errors are over all ranks' networks (collective calls).

    Notes
    -----
    The last layer's conditional covariance ``G`` is kept, so moments can be Rao–Blackwellised:
    ``E z⁴ = 3 E G²`` exactly.

    Seeds belong to blocks of networks, not to processes, so the union of the ranks' networks *is*
    the one-process ensemble with the same arguments: a distributed run reproduces it to rounding
    (only the sums of jackknife groups that straddle two ranks are added in another order).

    References
    ----------
    Roberts, Yaida & Hanin (2022), §4.1 (the layer-to-layer conditional law).

    Examples
    --------
    >>> cfg = MLPConfig("relu", 32, 3, C_W=2.0, C_b=0.0)
    >>> res = sample_ensemble(cfg, 4000, [1.0], seed=0, progress=False)
    >>> res.outputs.shape
    (4000, 1, 1)
    >>> est, se = res.excess_kurtosis()
    >>> bool(abs(est[0] - 3 * ((1 + 5 / 32) ** 2 - 1)) < 4 * se[0])
    True
    """
    import torch
    from tqdm.auto import tqdm

    if not isinstance(config, MLPConfig):
        raise InputError(f"`config` must be an MLPConfig; got {type(config).__name__}.")
    n_networks = check_int(n_networks, "n_networks", minimum=1)
    method = check_choice(method, "method", ("exact", "weights"))
    seed = check_seed(seed)
    X = np.asarray(inputs, dtype=float)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != config.input_dim:
        raise InputError(
            f"`inputs` must have shape (k, {config.input_dim}) (input_dim = {config.input_dim}); got {np.shape(inputs)}."
        )
    if not np.all(np.isfinite(X)):
        raise InputError(f"`inputs` must be finite; got {int(np.sum(~np.isfinite(X)))} NaN/inf entries.")
    dtype = torch.float64 if dtype is None else dtype
    act = resolve_activation(config.activation)
    k = X.shape[0]
    n = config.width
    chunk = default_chunk(config, method, k, n_networks) if chunk is None else check_int(chunk, "chunk", minimum=1)
    red = reducer(distributed, group)
    if red.distributed:
        _check_same_on_all_ranks(red, config=config.to_dict(), n_networks=n_networks, inputs=X.tolist(),
                                 method=method, seed=int(seed), chunk=chunk, dtype=str(dtype))
        world = red.world
    else:
        world = 1
    n_blocks = -(-n_networks // chunk)
    first, stop = n_blocks * red.rank // world, n_blocks * (red.rank + 1) // world
    lo, hi = min(first * chunk, n_networks), min(stop * chunk, n_networks)
    dev = torch_device(device)  # None: the CPU
    try:
        Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    except (RuntimeError, TypeError, AssertionError) as exc:
        raise InputError(f"`dtype` must be a torch floating-point dtype usable on {dev}; got {dtype!r} ({exc}).") from None
    draw = exact_chunk if method == "exact" else weights_chunk
    outs = [np.empty((0, config.output_width, k), dtype=torch.empty(0, dtype=dtype).numpy().dtype)]
    Gs = [np.empty((0, k, k), dtype=outs[0].dtype)]
    with tqdm(total=hi - lo, disable=not progress or red.rank != 0, unit="net",
              desc=f"{method} n={n} L={config.depth}") as bar:
        for i in range(first, stop):
            B = min(chunk, n_networks - i * chunk)
            gen = torch.Generator(device=dev)
            gen.manual_seed(chunk_seed(int(seed), i))
            with torch.no_grad():
                try:
                    out, G = draw(act, config, Xt, B, gen)
                except TypeError as exc:
                    raise InputError(f"`activation` {act.name!r} failed on a torch tensor: {exc}") from None
            outs.append(out.cpu().numpy())
            Gs.append(G.cpu().numpy())
            bar.update(B)
    if not red.distributed:
        return EnsembleResult(config, method, int(seed), X, np.concatenate(outs), np.concatenate(Gs))
    return EnsembleResult(config, method, int(seed), X, np.concatenate(outs), np.concatenate(Gs),
                          network_offset=lo, total_networks=n_networks, reducer=red)
