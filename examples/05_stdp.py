"""05 - Spike-timing-dependent plasticity onto an AdEx neuron.

100 Poisson inputs drive one AdEx neuron through a TraceSTDPSynapse. Inputs
0-49 are "correlated": they share a common rate modulation (a 10 ms window
of high rate every 100 ms), so they tend to fire together and trigger the
postsynaptic spikes. Inputs 50-99 fire independently at the same mean rate.
Each synapse keeps a presynaptic trace and sees the postsynaptic trace
(VarTrace); the weight grows when a presynaptic spike precedes a postsynaptic
one (A_plus) and shrinks in the reverse order (A_minus). Weights live in
[0, 1]; g_conduct_factor turns them into pA.

Run:  python examples/05_stdp.py   (figures go to $NGC_ADEX_OUT, default ./out)
"""
import os
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import jax
import jax.numpy as jnp
import numpy as np
from ngclearn import Context, MethodProcess
from ngclearn.components import PoissonCell, TraceSTDPSynapse, VarTrace
from ngclearn.utils.distribution_generator import DistributionGenerator

from ngc_adex import AdExCell, preset_kwargs
from ngc_adex.simulate import simulate_process

OUT = Path(os.environ.get("NGC_ADEX_OUT", "out"))
OUT.mkdir(parents=True, exist_ok=True)
DURATION, DT = 1000., 0.1  # ms
N = 100
keys = jax.random.split(jax.random.PRNGKey(1), 2)

with Context("stdp_demo"):
    pre = PoissonCell("pre", N, target_freq=20., key=keys[0])
    W = TraceSTDPSynapse("W", (N, 1), A_plus=0.04, A_minus=0.06, eta=1., w_bound=1.,
                         weight_init=DistributionGenerator.uniform(0.45, 0.55),
                         g_conduct_factor=3000., key=keys[1])  # weight 1 -> 3000 pA pulse
    post = AdExCell("post", 1, integration_type="rk4", **preset_kwargs("tonic"))
    tr_pre = VarTrace("tr_pre", N, tau_tr=20., a_delta=0.)  # a_delta=0: trace jumps to 1 at a spike
    tr_post = VarTrace("tr_post", 1, tau_tr=20., a_delta=0.)

    pre.outputs >> W.inputs
    W.outputs >> post.j
    pre.outputs >> W.preSpike
    pre.outputs >> tr_pre.inputs
    tr_pre.trace >> W.preTrace
    post.s >> W.postSpike
    post.s >> tr_post.inputs
    tr_post.trace >> W.postTrace

    advance = (MethodProcess("advance") >> pre.advance_state >> W.advance_state >> post.advance_state
               >> tr_pre.advance_state >> tr_post.advance_state >> W.evolve)
    reset = (MethodProcess("reset") >> pre.reset >> W.reset >> post.reset
             >> tr_pre.reset >> tr_post.reset)
    advance.watch(W.weights, post.s)

correlated = jnp.arange(N) < N // 2


def input_rate(t):
    """Relative rate of each input at time t (ms); both groups average 1 (= 20 Hz)."""
    burst = jnp.where(jnp.mod(t, 100.) < 10., 8., 2. / 9.)  # 10 ms at 160 Hz, then 4.4 Hz
    return jnp.where(correlated, burst, 1.)


reset.run()
t, (weights, post_spikes) = simulate_process(advance, DURATION, DT, inputs=((pre.inputs, input_rate),))
weights = weights[:, :, 0]  # (steps, N)
w_corr, w_ind = weights[:, :N // 2].mean(axis=1), weights[:, N // 2:].mean(axis=1)
n_post = int(post_spikes.sum())
print(f"postsynaptic AdEx neuron: {n_post} spikes ({n_post / (DURATION / 1000.):.0f} Hz)")
print(f"mean weight, correlated inputs: {w_corr[0]:.3f} -> {w_corr[-1]:.3f}")
print(f"mean weight, independent inputs: {w_ind[0]:.3f} -> {w_ind[-1]:.3f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
ax1.plot(t, weights[:, :N // 2], color="tab:red", lw=0.3, alpha=0.3)
ax1.plot(t, weights[:, N // 2:], color="tab:blue", lw=0.3, alpha=0.3)
ax1.plot(t, w_corr, color="darkred", lw=2, label="correlated (mean)")
ax1.plot(t, w_ind, color="navy", lw=2, label="independent (mean)")
ax1.set_xlabel("time (ms)")
ax1.set_ylabel("weight")
ax1.set_title("weight evolution under STDP")
ax1.legend(loc="upper left")
ax2.bar(np.arange(N), weights[-1], color=np.where(np.arange(N) < N // 2, "tab:red", "tab:blue"))
ax2.set_xlabel("input index")
ax2.set_ylabel("final weight")
ax2.set_title(f"weights after {DURATION:g} ms")
path = OUT / "05_stdp.png"
fig.savefig(path, dpi=110)
print(f"wrote {path}")
