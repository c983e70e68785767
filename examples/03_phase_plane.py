"""03 - Phase plane of a bursting neuron.

The AdEx is a 2-D system (v, w). Between spikes the trajectory follows the
flow set by the two nullclines (where dv/dt = 0 and dw/dt = 0); at each spike
it jumps: v -> v_reset, w -> w + b. For the "regular_bursting" preset the
reset lands to the right of the v-nullcline's minimum, so the next spike
follows quickly (a burst) until w has grown enough to push the reset point
below the nullcline; then the trajectory makes a long excursion to the left
(the inter-burst interval).

Run:  python examples/03_phase_plane.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")

from ngc_adex import preset, preset_kwargs
from ngc_adex.analysis import classify, detect_bursts, simulate_one
from ngc_adex.plotting import plot_phase_plane

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DURATION, DT = 500., 0.1  # ms

name = "regular_bursting"
kwargs = preset_kwargs(name)
current = preset(name)["I"]  # pA
result = simulate_one(kwargs, current, duration=DURATION, dt=DT, method="precise")

spikes = result.spike_times
bursts = detect_bursts(spikes)
sizes = [last - first + 1 for first, last in bursts]
print(f"{name}: I = {current:g} pA, {len(spikes)} spikes in {len(bursts)} bursts of sizes {sizes}; "
      f"pattern: {classify(spikes, DURATION)}")

path = OUT / "03_phase_plane.png"
plot_phase_plane(kwargs, current, result, path=path, title=f"{name.replace('_', ' ')}, I = {current:g} pA")
print(f"wrote {path}")
