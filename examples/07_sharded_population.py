"""A population of AdEx neurons sharded over devices along the neuron axis.

Each neuron's update depends only on its own state and input, so a population
can be split over several devices (GPUs, or CPU "devices"): place the state
arrays with a ``NamedSharding`` over the neuron axis and jit the scan with
matching in/out shardings. The result is bitwise the same as the unsharded run
and the step needs no communication, for every integrator and population size
(tests/test_sharding.py checks both).

On a CPU-only machine, ask XLA for several host devices::

    python examples/07_sharded_population.py --devices 2

With one device (the default on CPU) the same code runs unsharded.
"""
import argparse
import os
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--devices", type=int, default=0,
                help="CPU host devices to create (sets XLA_FLAGS before jax is imported; 0 = leave as is)")
ap.add_argument("--n", type=int, default=4096, help="neurons (a multiple of the device count)")
ap.add_argument("--duration", type=float, default=500., help="simulated time (ms)")
ap.add_argument("--dt", type=float, default=0.1, help="step (ms)")
ap.add_argument("--method", default="precise", help="integrator: euler, midpoint, rk4 or precise")
args = ap.parse_args()
if args.devices:  # must happen before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402
from ngclearn import Context  # noqa: E402

import ngc_adex  # noqa: E402
from ngc_adex import numerics  # noqa: E402

devices = jax.devices()
n = args.n - args.n % len(devices)
print(f"{len(devices)} device(s): {[str(d) for d in devices]}; {n} neurons, {args.method}")

# a Brette-Gerstner population, one constant current per neuron (400..1600 pA)
with Context("sharded_population"):
    cell = ngc_adex.AdExCell("z", n_units=n, integration_type=args.method,
                             **ngc_adex.preset_kwargs("brette_gerstner_2005"))
current = jnp.asarray(np.linspace(400., 1600., n, dtype=np.float32)[None, :])

# the mesh: one axis, "neurons", over all devices; compartments are (batch, n_units)
mesh = Mesh(np.array(devices), ("neurons",))
per_neuron = NamedSharding(mesh, P(None, "neurons"))          # (batch, n_units)
per_step = NamedSharding(mesh, P(None, None, "neurons"))      # (steps, batch, n_units)
replicated = NamedSharding(mesh, P())

dt = args.dt  # a Python float, closed over: the step compiles to the same program as with dt traced
step = cell.step_fn  # the cell's pure update: compartment arrays in, compartment arrays out


def run(state, j, ts):
    def body(s, t):
        s = numerics.AdExState(*step(*s, j, t, dt))
        # spikes and their precise times, per step: 8 bytes of traces per neuron-step to write, about
        # as costly as the step itself at 1e5 neurons (return None instead to keep only the final state)
        return s, (s.s, s.t_spike)
    return jax.lax.scan(body, state, ts)


state = numerics.AdExState(*(c.get() for c in (cell.v, cell.w, cell.ref_left, cell.s, cell.tols, cell.t_spike)))
state = jax.tree_util.tree_map(lambda a: jax.device_put(a, per_neuron), state)
current = jax.device_put(current, per_neuron)
ts = (jnp.arange(int(round(args.duration / dt)), dtype=jnp.float32) + 1.) * dt

sharded_run = jax.jit(run, in_shardings=(per_neuron, per_neuron, replicated),
                      out_shardings=(per_neuron, (per_step, per_step)))
t0 = time.perf_counter()
final, (spikes, t_spike) = jax.block_until_ready(sharded_run(state, current, ts))
print(f"first call (compile + run) {time.perf_counter() - t0:.2f} s")
t0 = time.perf_counter()
final, (spikes, t_spike) = jax.block_until_ready(sharded_run(state, current, ts))
wall = time.perf_counter() - t0
print(f"run {wall:.2f} s: {n * len(ts) / wall:.3g} neuron-steps/s")

print(f"v is sharded as {final.v.sharding.spec}:",
      ", ".join(f"{s.device}: {s.data.shape}" for s in final.v.addressable_shards))

# write the final state back into the cell (gathered to one array on assignment)
for name in numerics.AdExState._fields:
    getattr(cell, name).set(getattr(final, name))

counts = np.asarray(spikes).sum(axis=(0, 1))
rates = counts / (args.duration * 1e-3)
print(f"rates: {rates[0]:.1f} Hz at {float(current[0, 0]):.0f} pA ... {rates[-1]:.1f} Hz at "
      f"{float(current[0, -1]):.0f} pA; {int(counts.sum())} spikes")
first = np.asarray(t_spike)[np.argmax(np.asarray(spikes)[:, 0, -1] > 0), 0, -1]
print(f"first spike of the last neuron at {first:.5f} ms (precise, between grid points)")
