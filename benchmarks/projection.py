"""Cost per step of event-driven delivery (ngc_adex.numerics.projection) at the scale of the
RS-FS network, and of the alternatives tried.

Setup: one projection n_pre -> n_post, pairwise Bernoulli p (default RS->all of the RS-FS
network: 8000 -> 10000, p = 0.05, out-degree ~500), random presynaptic spikes at ``--rate``
Hz (dt = 0.1 ms), a scan of ``--steps`` steps after compilation, best of ``--reps``.

Variants (one row each):
* ``ell K=<k>``: the delivery of ``P.step``: compaction into a buffer of k spikes (blocked prefix
  sum + binary search), then each spike's ELL row added into the flat ring buffer (one
  gather-add-write per spike, in a loop over the step's spikes; beyond k found one by one).
* ``ell K=<k> delays``: the same with per-connection delays (1..5 steps) read from ``delays``.
* ``scatter-add K=<k>``: the same compaction, then the k rows (pads included) in one scatter-add
  (first round only: the figure is its cost, not a correct delivery when a step overflows).
* ``nonzero K=<k>``: the same with compaction by ``jnp.nonzero(size=k)``.
* ``segment_sum K=<k>``: the scatter as ``jax.ops.segment_sum`` over n_post + 1 segments.
* ``poisson inverse-cdf`` / ``poisson jax.random``: per-target Poisson counts of 10000 targets
  at lam = 0.1 per step (the drive of the RS-FS network).

Run:  python benchmarks/projection.py [--n-pre 8000] [--n-post 10000] [--p 0.05] [--rate 10]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ngc_adex.numerics import projection as P  # noqa: E402
from ngc_adex.numerics import poisson as PO  # noqa: E402


def _timed(fn, args, reps):
    out = fn(*args)
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _scatter_all_step(buffer, head, spikes, targets, weights, k, compaction):
    """The alternative to the per-spike rows: compaction (``P.compact`` or ``jnp.nonzero``), then the
    k compacted rows (pads included) in one scatter-add into the next slot (first round only)."""
    n_slots, batch, width = buffer.shape
    if compaction == "nonzero":
        idx = jnp.nonzero(spikes[0], size=k, fill_value=targets.shape[0])[0][None]
    else:
        idx, _ = P.compact(spikes, k)
    tg = targets.at[idx].get(mode="fill", fill_value=width - 1)
    w = weights.at[idx].get(mode="fill", fill_value=0)
    buffer = buffer.at[(head + 1) % n_slots, 0, tg.ravel()].add(w.ravel())
    return P.pop_slot(buffer, head)


def _segment_step(buffer, head, spikes, targets, weights, k):
    n_slots, batch, width = buffer.shape
    idx, _ = P.compact(spikes, k)
    tg = targets.at[idx].get(mode="fill", fill_value=width - 1)
    w = weights.at[idx].get(mode="fill", fill_value=0)
    add = jax.ops.segment_sum(w.ravel(), tg.ravel(), num_segments=width)
    slot = (head + 1) % n_slots
    buffer = buffer.at[slot, 0].add(add)
    return P.pop_slot(buffer, head)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-pre", type=int, default=8000)
    ap.add_argument("--n-post", type=int, default=10000)
    ap.add_argument("--p", type=float, default=0.05)
    ap.add_argument("--rate", type=float, default=10., help="presynaptic rate (Hz)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ks", default="8,16,32,64")
    args = ap.parse_args()
    dt = 0.1
    pre, post = P.connect("pairwise_bernoulli", args.n_pre, args.n_post, 1, p=args.p)
    rng = np.random.default_rng(0)
    delay = rng.integers(1, 6, pre.size)
    tg, W, D = (jnp.asarray(a) for a in P.ell_layout(pre, post, 1.5, delay, args.n_pre, args.n_post))
    spikes = jnp.asarray(rng.random((args.steps, 1, args.n_pre)) < args.rate * dt * 1e-3, jnp.float32)
    per_step = float(spikes.sum()) / args.steps
    print(f"n_pre {args.n_pre}, n_post {args.n_post}, max_out {tg.shape[1]}, "
          f"{per_step:.2f} spikes/step (max {int(spikes.sum(axis=(1, 2)).max())})")

    def run(step):
        def body(c, s):
            out, buf, head = step(c[0], c[1], s)
            return (buf, head), out[0, 0]
        return jax.jit(lambda buf, head: jax.lax.scan(body, (buf, head), spikes))

    buf = jnp.zeros((6, 1, args.n_post + 1))
    head = jnp.int32(0)
    rows = []
    for k in (int(x) for x in args.ks.split(",")):
        rows.append((f"ell K={k}", run(lambda b, h, s, k=k: P.step(b, h, s, tg, W, D, k, 1))))
        rows.append((f"ell K={k} delays", run(lambda b, h, s, k=k: P.step(b, h, s, tg, W, D, k, None))))
        rows.append((f"scatter-add K={k}", run(lambda b, h, s, k=k: _scatter_all_step(b, h, s, tg, W, k, "ranks"))))
        rows.append((f"nonzero K={k}", run(lambda b, h, s, k=k: _scatter_all_step(b, h, s, tg, W, k, "nonzero"))))
        rows.append((f"segment_sum K={k}", run(lambda b, h, s, k=k: _segment_step(b, h, s, tg, W, k))))
    for name, fn in rows:
        t = _timed(fn, (buf, head), args.reps)
        print(f"{name:24s} {t / args.steps * 1e6:8.1f} us/step")

    lam = jnp.full((1, 10000), 0.1)
    keys = jax.random.split(jax.random.PRNGKey(0), args.steps)
    for name, f in (("poisson inverse-cdf", lambda k: PO.poisson_counts(k, lam)),
                    ("poisson jax.random", lambda k: jax.random.poisson(k, lam).astype(jnp.float32))):
        fn = jax.jit(lambda ks, f=f: jax.lax.scan(lambda c, k: (c + f(k), None), jnp.zeros_like(lam), ks)[0])
        t = _timed(fn, (keys,), args.reps)
        print(f"{name:24s} {t / args.steps * 1e6:8.1f} us/step (10000 targets, lam 0.1)")


if __name__ == "__main__":
    main()
