"""01 - The eight firing patterns of Naud et al. (2008).

Each pattern is one AdEx parameter set plus a constant input current. We put
all eight parameter sets into ONE AdExCell population (parameters may differ
from neuron to neuron), drive every neuron with its published current (pA) and
simulate 500 ms with the "precise" integrator. Then each spike train is
classified and the v/w traces are drawn in one gallery figure.

Run:  python examples/01_firing_patterns.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")

from ngclearn import Context
from ngc_adex import AdExCell, preset, preset_kwargs
from ngc_adex.analysis import EXPECTED_LABELS, NAUD_PATTERNS, adaptation_index, classify, split_result
from ngc_adex.plotting import plot_gallery
from ngc_adex.simulate import simulate

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DURATION, DT = 500., 0.1  # ms

# 1. one neuron per pattern: turn the eight keyword dicts into per-neuron lists
names = list(NAUD_PATTERNS)
kwargs = [preset_kwargs(name) for name in names]  # physical units: j and w in pA
per_neuron = {key: [kw[key] for kw in kwargs] for key in kwargs[0]}

with Context("naud_patterns"):
    cells = AdExCell("cells", n_units=len(names), integration_type="precise", **per_neuron)

# 2. the published stimulus of each pattern, held constant from t = 0
current = [[preset(name)["I"] for name in names]]  # shape (batch, n_units), pA
result = simulate(cells, DURATION, DT, current=current, record=("v", "w"))

# 3. classify each spike train and draw the gallery
per_pattern = split_result(result, names)
labels = {}
print(f"{'pattern':<26} {'spikes':>6} {'A':>8}  label")
for name, res in per_pattern.items():
    labels[name] = classify(res.spike_times, DURATION)
    a = adaptation_index(res.spike_times)
    print(f"{name:<26} {len(res.spike_times):>6} {a:>8.4f}  {labels[name]}")

n_ok = sum(labels[n] == EXPECTED_LABELS[n] for n in names)
print(f"{n_ok}/{len(names)} patterns classified as their name")
path = OUT / "01_firing_patterns.png"
plot_gallery(per_pattern, labels=labels, path=path, title="Naud et al. (2008) firing patterns")
print(f"wrote {path}")
