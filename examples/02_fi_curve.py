"""02 - f-I curves: firing rate against input current.

fi_curve builds ONE AdExCell population in which neuron k receives the k-th
current, simulates it once and counts spikes. We compare three presets: a
tonic cell, an adapting cell (its rate saturates because every spike adds to
the adaptation current w) and the Brette & Gerstner (2005) regular-spiking
set. The steady-state rate (second half of the run) shows the effect of
adaptation more clearly than the mean rate.

Run:  python examples/02_fi_curve.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ngc_adex.analysis import fi_curve
from ngc_adex.plotting import plot_fi

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DURATION, DT = 500., 0.1  # ms

currents = np.arange(0., 1001., 25.)  # pA, one neuron per value
presets = ["tonic", "adapting", "brette_gerstner_2005"]

mean_rate, steady_rate = {}, {}
for name in presets:
    rates, trains = fi_curve(name, currents, duration=DURATION, dt=DT, method="precise", return_trains=True)
    mean_rate[name] = rates
    # steady state: count only the spikes of the second half of the run
    late = [np.count_nonzero(tr >= DURATION / 2) for tr in trains]
    steady_rate[name] = 1000. * np.array(late) / (DURATION / 2)
    rheobase = currents[np.argmax(rates > 0)] if np.any(rates > 0) else float("nan")
    print(f"{name:<22} first spikes at {rheobase:g} pA; at 1000 pA: mean {rates[-1]:.0f} Hz, "
          f"steady {steady_rate[name][-1]:.0f} Hz")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
plot_fi(currents, mean_rate, ax=ax1, title="mean rate over 500 ms")
plot_fi(currents, steady_rate, ax=ax2, title="steady-state rate (250-500 ms)")
path = OUT / "02_fi_curve.png"
fig.savefig(path, dpi=110)
print(f"wrote {path}")
