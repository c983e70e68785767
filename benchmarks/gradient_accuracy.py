"""Which integrators give meaningful spike-time gradients: jax.grad of the first spike time with
respect to the input current and to a, per integrator, against central differences of the scipy
reference (DOP853, rtol 1e-11), on the Naud "adapting" preset at dt = 0.1 ms (float32).

    python benchmarks/gradient_accuracy.py [--currents 400 700 1000 1500] [--dt 0.1]

Prints, per integrator and current, d(t_1)/d(j) (ms/pA) and d(t_1)/d(a) (ms/nS) against the
reference's, and their ratio.
"""
import argparse

import numpy as np
import jax

from ngc_adex import preset, preset_kwargs
from ngc_adex.numerics import METHODS, AdExParams, simulate_params, spike_time
from ngc_adex.reference import spike_times

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--currents", type=float, nargs="+", default=[400., 700., 1000., 1500.])
parser.add_argument("--dt", type=float, default=0.1)
args, _ = parser.parse_known_args()

phys = preset("adapting")
P = AdExParams(**{k: v for k, v in preset_kwargs("adapting").items() if k in AdExParams._fields})
n_steps = int(round(60. / args.dt))


def reference_first(j, a):
    return spike_times({**phys, "a": a}, 60., I=j, rtol=1e-11)[0]


print(f"{'method':9s} {'I pA':>6s} {'dt1/dj ours':>12s} {'reference':>12s} {'ratio':>7s} "
      f"{'dt1/da ours':>12s} {'reference':>12s} {'ratio':>7s}")
for method in METHODS:
    first = lambda p, j: spike_time(simulate_params(p, j, n_steps, args.dt, method).states)[0, 0]
    grad = jax.jit(jax.grad(first, argnums=(0, 1)))
    for j in args.currents:
        g_p, g_j = grad(P, j)
        e_j, e_a = 1e-4 * j, 1e-4 * phys["a"]
        ref_j = (reference_first(j + e_j, phys["a"]) - reference_first(j - e_j, phys["a"])) / (2. * e_j)
        ref_a = (reference_first(j, phys["a"] + e_a) - reference_first(j, phys["a"] - e_a)) / (2. * e_a)
        print(f"{method:9s} {j:6.0f} {float(g_j):12.4e} {ref_j:12.4e} {float(g_j) / ref_j:7.3f} "
              f"{float(g_p.a):12.4e} {ref_a:12.4e} {float(g_p.a) / ref_a:7.3f}", flush=True)
