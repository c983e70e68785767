"""04 - An excitatory-inhibitory circuit of AdEx and LIF neurons.

    Poisson inputs --W_in--> E (80 AdEx) --W_ei--> I (20 LIF)
                               ^                      |
                               +-------W_ie (< 0)-----+

The excitatory cells use the Brette & Gerstner (2005) regular-spiking
parameters, so their input j is in pA. DenseSynapse turns each presynaptic
spike into a current pulse lasting one step (dt): a 4000 pA pulse for 0.1 ms
moves v of a 281 pF cell by 4000 * 0.1 / 281 = 1.4 mV. E's input is the sum of
the Poisson drive and the (negative) inhibitory feedback. The whole circuit
runs in chunked jax.lax.scan loops via simulate_process.

Run:  python examples/04_ei_circuit.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import jax
from ngclearn import Context, MethodProcess, Summation
from ngclearn.components import DenseSynapse, LIFCell, PoissonCell
from ngclearn.utils.distribution_generator import DistributionGenerator

from ngc_adex import AdExCell, preset_kwargs
from ngc_adex.plotting import plot_raster
from ngc_adex.simulate import simulate_process

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DURATION, DT = 500., 0.1  # ms
N_IN, N_E, N_I = 100, 80, 20
keys = jax.random.split(jax.random.PRNGKey(42), 4)
uniform = DistributionGenerator.uniform

with Context("ei_circuit"):
    inp = PoissonCell("inp", N_IN, target_freq=20., key=keys[0])  # 20 Hz each
    W_in = DenseSynapse("W_in", (N_IN, N_E), weight_init=uniform(2000., 6000.), key=keys[1])  # pA
    E = AdExCell("E", N_E, integration_type="rk4", **preset_kwargs("brette_gerstner_2005"))
    W_ei = DenseSynapse("W_ei", (N_E, N_I), weight_init=uniform(1000., 3000.), key=keys[2])
    # LIF: tau_m dv/dt = (v_rest - v) + resist_m j; resist_m = 0.1 GOhm (10 nS leak), so j in pA
    I = LIFCell("I", N_I, tau_m=10., resist_m=0.1, thr=-50., v_rest=-65., v_reset=-60.,
                theta_plus=0., refract_time=2.)
    W_ie = DenseSynapse("W_ie", (N_I, N_E), weight_init=uniform(-6000., -2000.), key=keys[3])

    inp.outputs >> W_in.inputs
    Summation(W_in.outputs, W_ie.outputs) >> E.j  # drive + inhibitory feedback
    E.s >> W_ei.inputs
    W_ei.outputs >> I.j
    I.s >> W_ie.inputs

    advance = (MethodProcess("advance") >> inp.advance_state >> W_in.advance_state >> W_ie.advance_state
               >> E.advance_state >> W_ei.advance_state >> I.advance_state)
    reset = (MethodProcess("reset") >> inp.reset >> W_in.reset >> W_ie.reset >> E.reset
             >> W_ei.reset >> I.reset)
    advance.watch(E.s, I.s)

reset.run()
# PoissonCell fires with probability inputs * target_freq * dt: hold its input at 1 every step
t, (spikes_e, spikes_i) = simulate_process(advance, DURATION, DT, inputs=((inp.inputs, 1.),))


def trains(spikes):
    """Spike times (ms, end of the step) per neuron from a (steps, 1, n) 0/1 array."""
    spikes = spikes.reshape(len(t), -1)
    return [t[spikes[:, k] > 0] for k in range(spikes.shape[1])]


trains_e, trains_i = trains(spikes_e), trains(spikes_i)
rate_e = sum(len(tr) for tr in trains_e) / N_E / (DURATION / 1000.)
rate_i = sum(len(tr) for tr in trains_i) / N_I / (DURATION / 1000.)
print(f"E: {N_E} AdEx neurons, mean rate {rate_e:.1f} Hz; I: {N_I} LIF neurons, mean rate {rate_i:.1f} Hz")

path = OUT / "04_ei_circuit.png"
plot_raster({"E (AdEx)": trains_e, "I (LIF)": trains_i}, path=path, duration=DURATION, rate_bin=5.,
            title="E-I circuit: raster and population rate")
print(f"wrote {path}")
