"""A/B throughput of the step: this checkout's ``ngc_adex.numerics.advance`` against another
checkout's (e.g. a worktree of an earlier commit), imported side by side in one process and timed
interleaved, so that the noise of a shared machine hits both alike.

Run:  python benchmarks/ab_step.py PATH_TO_OTHER_CHECKOUT [--n 100000] [--steps 500] [--repeats 7]
          [--methods euler,rk4,precise] [--refract-time 2.0]

Prints, per integrator, the best ns per neuron-step of each and their ratio (Brette-Gerstner
parameters, currents 400-1600 pA, dt = 0.1 ms, float32).
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import jax
import jax.numpy as jnp

import ngc_adex.numerics as ours
from ngc_adex import preset_kwargs


def _import_other(checkout):
    """The other checkout's package under the name ``ngc_adex_other`` (it uses relative imports)."""
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(checkout, "ngc_adex"), os.path.join(tmp, "ngc_adex_other"))
    sys.path.insert(0, tmp)
    try:
        return importlib.import_module("ngc_adex_other.numerics")
    except ImportError:  # a checkout from before the numerics package
        return importlib.import_module("ngc_adex_other.dynamics")


def _runner(mod, method, n, steps, refract_time):
    kw = dict(preset_kwargs("brette_gerstner_2005"), refract_time=refract_time)
    c = mod.coefficients(mod.AdExParams(**{k: np.full((1, n), kw[k]) for k in mod.AdExParams._fields}))
    j = jnp.asarray(np.linspace(400., 1600., n)[None, :], jnp.float32)

    @jax.jit
    def run(v, w, dt):
        z = jnp.zeros_like(v)
        body = lambda s, i: (mod.advance(s, j, (i + 1) * dt, dt, c, method, refract_time > 0.), None)
        return jax.lax.scan(body, mod.AdExState(v, w, z, z, z, z), jnp.arange(steps, dtype=jnp.float32))[0].v

    v0, w0 = jnp.full((1, n), kw["v0"], jnp.float32), jnp.zeros((1, n), jnp.float32)
    run(v0, w0, jnp.float32(0.1)).block_until_ready()
    return lambda: run(v0, w0, jnp.float32(0.1)).block_until_ready()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="path to the other checkout (its ngc_adex/ package is compared)")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--methods", default="euler,midpoint,rk4,precise", help="comma-separated integrators")
    ap.add_argument("--refract-time", type=float, default=0., help="refractory period (ms); > 0 compiles that path")
    args = ap.parse_args(argv)
    other = _import_other(args.other)
    methods = [m for m in args.methods.split(",") if m in other.METHODS]
    print(f"N = {args.n}, {args.steps} steps, refract_time {args.refract_time} ms, best of {args.repeats} interleaved runs (ns per neuron-step)")
    for method in methods:
        runs = {"other": _runner(other, method, args.n, args.steps, args.refract_time),
                "this": _runner(ours, method, args.n, args.steps, args.refract_time)}
        best = {k: np.inf for k in runs}
        for _ in range(args.repeats):
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                best[k] = min(best[k], (time.perf_counter() - t0) / (args.n * args.steps) * 1e9)
        print(f"{method:9s} other {best['other']:.2f}  this {best['this']:.2f}  this/other {best['this'] / best['other']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
