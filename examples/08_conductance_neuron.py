"""08 - One AdEx neuron driven by conductance synapses.

    200 excitatory Poisson cells --W_exc--> cell.exc  (g_exc: tau 5 ms, E 0 mV)
     50 inhibitory Poisson cells --W_inh--> cell.inh  (g_inh: tau 10 ms, E -80 mV)

A receptor port (``receptors=`` of AdExCell) takes the summed weights of the
step's presynaptic spikes (nS) and integrates its conductance g together with
v and w, so the synaptic current g (E - v) is exact inside the step. The cell
has Brette & Gerstner (2005) parameters; the whole run is one MethodProcess.scan.

Run:  python examples/08_conductance_neuron.py [--duration 1000] [--out out/conductance_neuron.png]
"""
import argparse
import os
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
from ngclearn import Context, MethodProcess
from ngclearn.components import DenseSynapse, PoissonCell
from ngclearn.utils.distribution_generator import DistributionGenerator

from ngc_adex import AdExCell, from_physical

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--duration", type=float, default=1000., help="simulated time (ms)")
ap.add_argument("--dt", type=float, default=0.1, help="step (ms)")
ap.add_argument("--out", default=str(Path(os.environ.get("NGC_ADEX_OUT", "out")) / "conductance_neuron.png"))
args = ap.parse_args()
steps, dt = int(round(args.duration / args.dt)), args.dt
N_EXC, N_INH = 200, 50
BG = dict(C=281., g_L=30., E_L=-70.6, V_T=-50.4, Delta_T=2., V_reset=-70.6, V_peak=0., a=4., tau_w=144., b=80.5)
receptors = [{"name": "exc", "kind": "exp", "tau_decay": 5., "e_rev": 0.},     # AMPA-like
             {"name": "inh", "kind": "exp", "tau_decay": 10., "e_rev": -80.}]  # GABA_A-like
keys = jax.random.split(jax.random.PRNGKey(8), 4)

with Context("conductance_neuron"):
    exc = PoissonCell("exc", N_EXC, target_freq=10., key=keys[0])  # Hz
    inh = PoissonCell("inh", N_INH, target_freq=10., key=keys[1])
    W_exc = DenseSynapse("W_exc", (N_EXC, 1), weight_init=DistributionGenerator.uniform(1.5, 3.5), key=keys[2])  # nS
    W_inh = DenseSynapse("W_inh", (N_INH, 1), weight_init=DistributionGenerator.uniform(2., 4.), key=keys[3])  # nS
    cell = AdExCell("cell", 1, integration_type="precise", receptors=receptors, **from_physical(**BG))
    exc.outputs >> W_exc.inputs
    inh.outputs >> W_inh.inputs
    W_exc.outputs >> cell.exc  # one port per receptor, named as in `receptors`
    W_inh.outputs >> cell.inh
    parts = (exc, inh, W_exc, W_inh, cell)
    advance, reset = MethodProcess("advance"), MethodProcess("reset")
    for part in parts:
        advance >> part.advance_state
        reset >> part.reset
    advance.watch(cell.v, cell.w, cell.s, cell.t_spike, cell.g_syn)  # g_syn: (receptor, batch, unit)

reset.run()
exc.inputs.set(jnp.ones((1, N_EXC)))  # PoissonCell fires with probability inputs * target_freq * dt
inh.inputs.set(jnp.ones((1, N_INH)))
_, (v, w, s, t_spike, g) = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt)))
t = (np.arange(steps) + 1) * dt
v, w, s = (np.asarray(x).reshape(steps) for x in (v, w, s))
g = np.asarray(g).reshape(steps, 2)
spike_times = np.asarray(t_spike).reshape(steps)[s > 0]  # precise crossing times (ms)
print(f"{len(spike_times)} spikes in {args.duration:g} ms: {len(spike_times) / args.duration * 1000.:.1f} Hz; "
      f"mean g_exc {g[:, 0].mean():.1f} nS, g_inh {g[:, 1].mean():.1f} nS")

fig = Figure(figsize=(9, 7), layout="constrained")
ax_v, ax_g, ax_w = fig.subplots(3, 1, sharex=True, height_ratios=[2, 1, 1])
ax_v.plot(t, v, lw=0.7, color="k")
ax_v.plot(spike_times, np.full(spike_times.shape, BG["V_peak"]), "v", color="tab:red", ms=5, label="spikes")
ax_v.set(ylabel="v (mV)", title="AdEx neuron with exponential conductance synapses")
ax_v.legend(loc="center left")
ax_g.plot(t, g[:, 0], lw=0.7, color="tab:green", label="g_exc (E = 0 mV)")
ax_g.plot(t, g[:, 1], lw=0.7, color="tab:purple", label="g_inh (E = -80 mV)")
ax_g.set(ylabel="g (nS)", ylim=(0, 1.4 * g.max()))
ax_g.legend(loc="upper left", ncol=2)
ax_w.plot(t, w, lw=0.8, color="tab:orange")
ax_w.set(xlabel="t (ms)", ylabel="w (pA)")
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(out, dpi=110)
print(f"wrote {out}")
