"""09 - The RS-FS cortical network: 8000 excitatory RS + 2000 inhibitory FS AdEx cells.

    external Poisson drive (8000 sources at 2.5 Hz, p = 0.05) --> RS, FS  (exc)
    RS --p = 0.05--> RS, FS  (exc: 1.5 nS, tau 5 ms, E 0 mV)
    FS --p = 0.05--> RS, FS  (inh: 5 nS, tau 5 ms, E -80 mV)

The network of di Volo et al. (2019) / Goldman et al. (2021), built by
``ngc_adex.networks.build_rsfs`` from two AdExCells with receptor ports, four
event-driven SparseProjections and two PoissonDrives. The run is one
``jax.lax.scan`` over the network's compiled step that keeps only what is
plotted: the spikes of the first RS and FS cells (raster), the population
rates, and v and w of one RS and one FS cell. Writes a raster, population rates
and the two cells' v/w traces, and prints the rates and the RS cells' mean ISI CV.

Run:  python examples/09_rsfs_network.py [--duration 1000] [--out out/09_rsfs_network.png]
"""
import argparse
import os
from pathlib import Path

import numpy as np
import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
from ngcsimlib.global_state import stateManager

from ngc_adex.networks import build_rsfs

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--duration", type=float, default=1000., help="simulated time (ms)")
ap.add_argument("--out", default=str(Path(os.environ.get("NGC_ADEX_OUT", "out")) / "09_rsfs_network.png"))
args = ap.parse_args()
dt, transient = 0.1, 200.  # ms
steps = int(round(args.duration / dt))
SHOWN = 400  # cells of each population in the raster

net = build_rsfs()
net.reset.run()
step = net.advance.run.compiled
rows = jnp.asarray(net.advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt))
path = {name: (cell.s.target, cell.v.target, cell.w.target) for name, cell in (("RS", net.rs), ("FS", net.fs))}


def record(state, row):
    state, _ = step(state, row)
    out = {}
    for name, (s, v, w) in path.items():
        out[name] = (state[s][0, :SHOWN] > 0, state[s][0].sum(), state[v][0, 0], state[w][0, 0])
    return state, out


state = {k: jnp.asarray(v) for k, v in stateManager.state.items()}
_, rec = jax.jit(lambda st: jax.lax.scan(record, st, rows))(state)
t = (np.arange(steps) + 1) * dt
n = {"RS": net.rs.n_units, "FS": net.fs.n_units}

fig = Figure(figsize=(10, 9), constrained_layout=True)
ax_raster, ax_rate, ax_v, ax_w = fig.subplots(4, 1, sharex=True, height_ratios=[3, 1.2, 1.2, 1])
offset = 0
for name, color in (("RS", "tab:blue"), ("FS", "tab:red")):
    raster, count, v, w = (np.asarray(x) for x in rec[name])
    ti, ci = np.nonzero(raster)
    ax_raster.plot(t[ti], ci + offset, ",", color=color)
    offset += SHOWN
    kernel = np.ones(50) / (50 * dt * 1e-3 * n[name])  # 5 ms bins -> Hz per neuron
    ax_rate.plot(t, np.convolve(count, kernel, mode="same"), color=color, label=name)
    ax_v.plot(t, v, color=color, lw=0.6, label=f"{name} cell 0")
    ax_w.plot(t, w, color=color, lw=0.8, label=f"{name} cell 0")
    late = t > transient
    rate = count[late].sum() / n[name] / ((args.duration - transient) * 1e-3)
    print(f"{name}: {rate:.2f} Hz (population mean after {transient:.0f} ms)")
    if name == "RS":
        cvs = [np.std(isi, ddof=1) / np.mean(isi) for isi in
               (np.diff(t[late][raster[late, i]]) for i in range(SHOWN)) if len(isi) >= 3]
        print(f"RS: mean ISI CV {np.mean(cvs):.2f} over {len(cvs)} of the first {SHOWN} cells")
ax_raster.set(ylabel=f"cell ({SHOWN} RS, {SHOWN} FS)", title="RS-FS AdEx network (ngc_adex)")
ax_rate.set(ylabel="rate (Hz)")
ax_rate.legend(loc="upper right")
ax_v.set(ylabel="v (mV)")
ax_w.set(ylabel="w (pA)", xlabel="time (ms)")
ax_w.legend(loc="upper right")
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out, dpi=110)
print(f"wrote {args.out}")
