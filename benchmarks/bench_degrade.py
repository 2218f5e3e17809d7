"""SGLD throughput of pft.degrade on a ~1M-parameter MLP, against plain forward+backward.

Run: ``python -m benchmarks.bench_degrade`` (add ``--quick`` for a smoke run).

Both loops see the same minibatches of the same model in the same process; the baseline is
``zero_grad(); loss_fn(model(x), y).backward()`` per step, the SGLD loop is
``TemperedPosterior.sample`` (forward, backward, the SGLD update with its Gaussian noise,
the loss record and divergence check). Timings alternate between the two loops and report
the median of ``repeats`` rounds, so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from pft.degrade import TemperedPosterior

__all__ = ["run", "main"]


def _mlp(widths, seed):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def run(
    *,
    quick: bool = False,
    widths=(784, 1024, 256, 10),
    n_data: int = 4096,
    batch_size: int = 256,
    steps: int = 60,
    repeats: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Time SGLD against plain forward+backward; returns one row per loop.

    Parameters
    ----------
    quick : bool
        A tiny MLP and a few steps (smoke run; the ratios then mean little).
    widths : tuple of int
        MLP layer widths; the default has 1 068 810 parameters.
    n_data, batch_size, steps, repeats, seed : int

    Returns
    -------
    list of dict
        Rows for plain forward+backward (the baseline), a plain SGD training step (for
        scale) and pft's SGLD step. Keys ``loop``, ``params``, ``batch``, ``steps``,
        ``seconds`` (median per round), ``steps_per_s`` and ``ratio`` (seconds per step over
        the forward+backward baseline).
    """
    if quick:
        widths, n_data, batch_size, steps, repeats = (16, 16, 4), 256, 32, 10, 1
    model = _mlp(widths, seed)
    d = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_data, widths[0], generator=g)
    y = torch.randint(0, widths[-1], (n_data,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()
    post = TemperedPosterior(model, loss_fn, (x, y), localization=100.0, step_size=1e-7,
                             batch_size=batch_size, seed=seed)

    base_model = _mlp(widths, seed)
    perm = torch.randperm(n_data, generator=g)

    def baseline():
        t0 = time.perf_counter()
        for s in range(steps):
            idx = perm[(s * batch_size) % (n_data - batch_size + 1):][:batch_size]
            base_model.zero_grad()
            loss_fn(base_model(x[idx]), y[idx]).backward()
        return time.perf_counter() - t0

    params = list(base_model.parameters())

    def train_step():
        # What torch.optim.SGD(foreach=True) does, without its import of torch._dynamo.
        t0 = time.perf_counter()
        for s in range(steps):
            idx = perm[(s * batch_size) % (n_data - batch_size + 1):][:batch_size]
            base_model.zero_grad()
            loss_fn(base_model(x[idx]), y[idx]).backward()
            with torch.no_grad():
                torch._foreach_add_(params, [p.grad for p in params], alpha=-1e-9)
        return time.perf_counter() - t0

    def sgld():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short untrained chains: mixing is not the point
            post.sample(steps, n_chains=1, burn_in=0, keep_draws=False, check_step_size=False,
                        progress=False)
        return time.perf_counter() - t0

    baseline(), train_step(), sgld()  # warm-up (allocator, thread pool)
    tb, tt, ts = [], [], []
    for _ in range(repeats):
        tb.append(baseline())
        tt.append(train_step())
        ts.append(sgld())
    b, t, s = statistics.median(tb), statistics.median(tt), statistics.median(ts)
    return [
        dict(loop="forward+backward", params=d, batch=batch_size, steps=steps, seconds=b,
             steps_per_s=steps / b, ratio=1.0),
        dict(loop="+ plain SGD step", params=d, batch=batch_size, steps=steps, seconds=t,
             steps_per_s=steps / t, ratio=t / b),
        dict(loop="SGLD (pft.degrade)", params=d, batch=batch_size, steps=steps, seconds=s,
             steps_per_s=steps / s, ratio=s / b),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model, few steps")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = dict(quick=True) if args.quick else dict(steps=args.steps, repeats=args.repeats, batch_size=args.batch)
    rows = run(**kw)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'loop':<20} {'params':>9} {'batch':>6} {'steps/s':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['loop']:<20} {r['params']:>9} {r['batch']:>6} {r['steps_per_s']:>9.1f} {r['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
