"""Long runs through the convenience runner: 1e6 neurons for 10 000 steps, peak memory.

Each configuration runs in a fresh subprocess, which reports its peak resident memory (VmHWM);
running the same population for 1 000 and for 10 000 steps shows whether memory grows with the
number of steps (it must not: simulate() scans in chunks and moves each chunk's output to the host).

    python benchmarks/long_run.py [--n 1000000] [--steps 10000] [--method euler]
"""
import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, jax.numpy as jnp
from ngclearn import Context
from ngc_adex import AdExCell, preset_kwargs
from ngc_adex.simulate import simulate
n, steps, method, spikes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
with Context("long"):
    cell = AdExCell("pop", n, integration_type=method, **preset_kwargs("brette_gerstner_2005"))
current = jnp.asarray(np.random.default_rng(0).uniform(400., 1600., (1, n)), dtype=jnp.float32)
t0 = time.perf_counter()
res = simulate(cell, steps * 0.1, 0.1, current, spikes=spikes, progress=False)
wall = time.perf_counter() - t0
peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"wall": wall, "peak_mb": peak / 1024, "spikes": int(len(res.spike_times))}))
"""


def run(n, steps, method, spikes):
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(steps), method, "1" if spikes else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--method", default="euler")
    args = ap.parse_args()
    print(f"N = {args.n}, dt = 0.1 ms, {args.method}, Brette-Gerstner 2005, currents uniform 400-1600 pA")
    print(f"{'steps':>7} {'spikes kept':>12} {'wall s':>8} {'neuron-steps/s':>15} {'peak RSS MB':>12} {'spikes':>10}")
    for spikes in (False, True):
        for steps in (args.steps // 10, args.steps):
            r = run(args.n, steps, args.method, spikes)
            print(f"{steps:>7} {str(spikes):>12} {r['wall']:>8.1f} {args.n * steps / r['wall']:>15.3g} "
                  f"{r['peak_mb']:>12.0f} {r['spikes']:>10}", flush=True)


if __name__ == "__main__":
    main()
