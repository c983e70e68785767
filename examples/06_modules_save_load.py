"""06 - Build a model from modules.json names, save it, load it, continue.

Older ngc-learn model code names its components through a
json_files/modules.json file ("adex", "dense", "poisson", ...).
ngc_adex.load_modules reads such a file and resolves those names. We build
Poisson -> DenseSynapse -> AdExCell, run 100 ms, save the whole Context to
disk, and run another 100 ms. Then we delete the Context, load it back from
disk and run the same 100 ms again: the loaded model (PRNG keys included)
continues exactly like the original.

Run:  python examples/06_modules_save_load.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import jax
import numpy as np
from ngclearn import Context, MethodProcess
from ngcsimlib.context import contextManager
from ngclearn.utils.distribution_generator import DistributionGenerator

from ngc_adex import load_modules, preset_kwargs
from ngc_adex.simulate import simulate_process

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DT = 0.1  # ms
MODULES = Path(__file__).resolve().parent.parent / "json_files" / "modules.json"

registry = load_modules(MODULES)
Poisson, Dense, AdEx = registry["poisson"], registry["dense"], registry["adex"]
print(f"resolved from {MODULES.name}: poisson -> {Poisson.__name__}, dense -> {Dense.__name__}, "
      f"adex -> {AdEx.__module__}.{AdEx.__name__}")

keys = jax.random.split(jax.random.PRNGKey(7), 2)
with Context("saved_model") as model:
    inp = Poisson("inp", 50, target_freq=20., key=keys[0])
    W = Dense("W", (50, 5), weight_init=DistributionGenerator.uniform(2000., 8000.), key=keys[1])
    z = AdEx("z", 5, integration_type="rk4", **preset_kwargs("adapting"))
    inp.outputs >> W.inputs
    W.outputs >> z.j
    advance = MethodProcess("advance") >> inp.advance_state >> W.advance_state >> z.advance_state
    reset = MethodProcess("reset") >> inp.reset >> W.reset >> z.reset
    advance.watch(z.s, z.v)

reset.run()
simulate_process(advance, 100., DT, inputs=((inp.inputs, 1.),))  # 0-100 ms
save_dir = OUT / "06_saved_model"  # contextData.json, component/roots.json, component/custom/*.npz, ...
save_dir.mkdir(exist_ok=True)
model.save_to_json(str(save_dir), "adex_model", overwrite=True)
print(f"saved the model after 100 ms to {save_dir / 'adex_model'}")
t, (s_orig, v_orig) = simulate_process(advance, 100., DT, inputs=((inp.inputs, 1.),), t0=100.)  # 100-200 ms

# forget the live model, then load it back from disk
contextManager.remove_context("saved_model")
loaded = Context.load(str(save_dir), "adex_model")
advance2 = loaded.get_objects("advance", objectType="process")
inp2 = loaded.get_components("inp")
t, (s_load, v_load) = simulate_process(advance2, 100., DT, inputs=((inp2.inputs, 1.),), t0=100.)

same = bool(np.array_equal(s_orig, s_load) and np.array_equal(v_orig, v_load))
print(f"100-200 ms: original {int(s_orig.sum())} spikes, loaded {int(s_load.sum())} spikes; "
      f"max |v difference| = {float(np.max(np.abs(v_orig - v_load))):.3g} mV; identical: {same}")

fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
for k in range(3):  # three of the five neurons
    ax.plot(t, v_orig[:, 0, k], color=f"C{k}", lw=2.5, alpha=0.4)
    ax.plot(t, v_load[:, 0, k], color=f"C{k}", lw=0.8, ls="--")
ax.set_xlabel("time (ms)")
ax.set_ylabel("v (mV)")
ax.set_title("continuation after save/load: original (thick) and loaded (dashed)")
path = OUT / "06_modules_save_load.png"
fig.savefig(path, dpi=110)
print(f"wrote {path}")
