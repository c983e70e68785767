"""AdExCell's receptor ports in ngc-learn Contexts: wiring from ngc-learn synapses, "euler" against
ngc-learn's own ExponentialSynapse-into-AdExCell circuit, "precise" against the reference
end to end, save/load continuation, validation."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from ngclearn import Context, MethodProcess
from ngclearn.components import DenseSynapse, PoissonCell
from ngclearn.components.neurons.spiking.adExCell import AdExCell as NgcAdExCell
from ngclearn.components.synapses.exponentialSynapse import ExponentialSynapse
from ngclearn.utils.distribution_generator import DistributionGenerator

from conftest import processes, settled_state, unique_name
from ngc_adex import AdExCell, from_physical, preset_kwargs

BG = dict(C=281.0, g_L=30.0, E_L=-70.6, V_T=-50.4, Delta_T=2.0, a=4.0, tau_w=144.0, b=80.5, V_reset=-70.6,
          V_peak=0.0)


def _poisson_circuit(n_in, n_out, cell_kwargs, weight, rate=40., seed=0, extra=None):
    """Poisson -> DenseSynapse (constant weights) -> our cell's "exc" port; returns the pieces."""
    with Context(unique_name("receptors")):
        inp = PoissonCell("inp", n_units=n_in, target_freq=rate, key=jax.random.PRNGKey(seed))
        W = DenseSynapse("W", shape=(n_in, n_out), weight_init=DistributionGenerator.constant(weight),
                         key=jax.random.PRNGKey(seed + 1))
        z = AdExCell("z", n_out, **cell_kwargs)
        inp.outputs >> W.inputs
        W.outputs >> z.exc
        advance = MethodProcess("advance") >> inp.advance_state >> W.advance_state >> z.advance_state
        reset = MethodProcess("reset") >> inp.reset >> W.reset >> z.reset
        advance.watch(inp.outputs, z.s, z.t_spike, z.v, z.g_syn)
    reset.run()
    inp.inputs.set(jnp.ones((1, n_in)))
    return inp, W, z, advance


def test_euler_with_an_exp_conductance_matches_ngclearns_exponential_synapse_circuit():
    """One Poisson population into ngc-learn's ExponentialSynapse -> ngc-learn's AdExCell, and into
    a DenseSynapse -> our "euler" cell with one "exp" conductance receptor: the same update order
    (synapse, then the membrane with the synapse's current at the step's v), so the same spikes and
    v, w and g to float32 rounding."""
    n_in, n_out, dt, steps = 30, 4, 0.1, 3000
    kw = dict(preset_kwargs("brette_gerstner_2005"))
    tau_s, g_bar, e_rev = 5., 4., 0.
    with Context(unique_name("euler_vs_ngclearn")):
        inp = PoissonCell("inp", n_units=n_in, target_freq=30., key=jax.random.PRNGKey(3))
        theirs_syn = ExponentialSynapse("theirs_syn", shape=(n_in, n_out), tau_decay=tau_s, g_syn_bar=g_bar,
                                        syn_rest=e_rev, key=jax.random.PRNGKey(4))
        theirs = NgcAdExCell("theirs", n_out, **{k: kw[k] for k in ("tau_m", "resist_m", "tau_w", "v_sharpness",
                                                                    "intrinsic_mem_thr", "thr", "v_rest",
                                                                    "v_reset", "a", "b", "v0")})
        W = DenseSynapse("W", shape=(n_in, n_out), weight_init=DistributionGenerator.constant(g_bar),
                         key=jax.random.PRNGKey(5))
        ours = AdExCell("ours", n_out, receptors=[{"name": "exc", "kind": "exp", "tau_decay": tau_s, "e_rev": e_rev}],
                        **kw)
        inp.outputs >> theirs_syn.inputs
        theirs.v >> theirs_syn.v
        theirs_syn.outputs >> theirs.j
        inp.outputs >> W.inputs
        W.outputs >> ours.exc
        advance = (MethodProcess("advance") >> inp.advance_state >> theirs_syn.advance_state >> theirs.advance_state
                   >> W.advance_state >> ours.advance_state)
        reset = MethodProcess("reset") >> inp.reset >> theirs_syn.reset >> theirs.reset >> W.reset >> ours.reset
        advance.watch(theirs.s, theirs.v, theirs_syn.g_syn, ours.s, ours.v, ours.g_syn)
    reset.run()
    inp.inputs.set(jnp.ones((1, n_in)))
    theirs.j.set(jnp.zeros((1, n_out)))
    _, out = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt)))
    s_t, v_t, g_t, s_o, v_o, g_o = (np.asarray(o) for o in out)
    assert s_t.sum() > 10
    np.testing.assert_array_equal(s_o, s_t)
    np.testing.assert_allclose(g_o[:, 0], g_t, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(v_o, v_t, rtol=0, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["exp", "alpha", "beta"])
def test_precise_in_a_context_matches_the_reference(kind):
    """Poisson -> DenseSynapse -> an excitatory conductance port, the recorded presynaptic spikes
    replayed into the reference as events at the start of their step: exact counts, median spike-time
    error <= 1e-3 ms (float32, dt = 0.1 ms)."""
    from ngc_adex.reference import simulate_reference
    rec = {"name": "exc", "kind": kind, "tau_decay": 2., "e_rev": 0., **({"tau_rise": 0.5} if kind == "beta" else {})}
    kw = dict(from_physical(**BG), integration_type="precise", receptors=[rec])
    n_in, weight, dt, steps, current = 20, 3., 0.1, 5000, 500.
    inp, W, z, advance = _poisson_circuit(n_in, 1, kw, weight)
    z.j.set(jnp.full((1, 1), current))
    _, (pre, s, t_spike, _, _) = advance.scan(jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt)))
    pre, s, t_spike = np.asarray(pre)[:, 0], np.asarray(s)[:, 0, 0], np.asarray(t_spike)[:, 0, 0]
    counts = pre.sum(1)
    k = np.nonzero(counts)[0]
    events = [(k * dt, counts[k] * weight)]  # spikes of step (k dt, (k+1) dt] act at k dt
    p = {"C": BG["C"], "gL": BG["g_L"], "EL": BG["E_L"], "VT": BG["V_T"], "DT": BG["Delta_T"], "a": BG["a"],
         "tau_w": BG["tau_w"], "b": BG["b"], "Vr": BG["V_reset"], "V_peak": BG["V_peak"]}
    ref_receptor = {"kind": kind, "tau_decay": 2., "E_rev": 0., **({"tau_rise": 0.5} if kind == "beta" else {})}
    ref = simulate_reference(p, steps * dt, I=current, receptors=[ref_receptor], events=events)["spikes"]
    times = t_spike[s > 0]
    assert len(ref) > 5 and len(times) == len(ref)
    assert np.median(np.abs(times - ref)) <= 1e-3


def test_receptor_state_saves_and_continues_bit_exactly(tmp_path):
    """Save after 500 steps, load the model into a new Context, continue 500 steps: spikes, v and the
    receptor states bitwise those of the run that went on without saving."""
    from ngcsimlib.global_state import stateManager
    kw = dict(from_physical(**BG), integration_type="rk4", receptors="aeif_cond_alpha")
    dt, half = 0.1, 500
    rows = lambda process, first: jnp.asarray(process.pack_rows(half, t=lambda i: (first + i + 1) * dt, dt=dt))
    with Context(unique_name("save_receptors")) as ctx:
        inp = PoissonCell("inp", n_units=10, target_freq=60., key=jax.random.PRNGKey(0))
        W = DenseSynapse("W", shape=(10, 3), weight_init=DistributionGenerator.constant(20.), key=jax.random.PRNGKey(1))
        z = AdExCell("z", 3, **kw)
        inp.outputs >> W.inputs
        W.outputs >> z.exc
        advance, reset = processes(inp, W, z, watch=(z.s, z.v, z.g_syn, z.h_syn))
    reset.run()
    inp.inputs.set(jnp.ones((1, 10)))
    z.j.set(jnp.full((1, 3), 600.))
    stateManager.set_state(settled_state(stateManager.state))
    state, _ = advance.scan(rows(advance, 0))
    stateManager.set_state(settled_state(state))
    model = unique_name("saved_receptors")
    ctx.save_to_json(str(tmp_path), model, overwrite=True)
    _, expected = advance.scan(rows(advance, half))
    loaded = Context.load(str(tmp_path), model)
    assert loaded.get_components("z").receptor_names == ("exc", "inh")
    _, got = loaded.get_objects_by_type("process")["advance"].scan(rows(advance, half))
    assert float(np.asarray(expected[0]).sum()) > 0 and float(np.asarray(expected[2]).max()) > 0
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("receptors,match", [
    ("nmda_like", "unknown preset"),
    ([{"name": "exc", "kind": "gamma", "tau_decay": 1.}], "kind"),
    ([{"name": "exc", "kind": "exp", "tau_decay": 0.}], r"tau_decay'\] must be a finite number > 0"),
    ([{"name": "exc", "kind": "beta", "tau_decay": 1., "tau_rise": 2.}], "tau_rise'] must be < tau_decay"),
    ([{"name": "exc", "kind": "exp", "tau_decay": 1., "tau_rise": 2.}], "applies to \"beta\" receptors only"),
    ([{"name": "v", "kind": "exp", "tau_decay": 1.}], "is taken"),
    ([{"name": "exc", "kind": "exp", "tau_decay": 1.}, {"name": "exc", "kind": "exp", "tau_decay": 2.}], "is taken"),
    ([{"name": "2x", "kind": "exp", "tau_decay": 1.}], "identifier"),
    ([{"name": "exc", "kind": "exp", "tau_decay": 1., "e_rev": float("nan")}], "e_rev"),
    ([{"name": "exc", "kind": "exp", "tau_syn": 1.}], "unknown key"),
])
def test_bad_receptors_are_rejected_at_construction(receptors, match):
    with pytest.raises(ValueError, match=match):
        with Context(unique_name("bad_receptors")):
            AdExCell("z", 2, receptors=receptors)


def test_simulate_refuses_a_cell_with_ports():
    """simulate() feeds j only: a cell with receptor ports gets a clear error, not a silent run."""
    from ngc_adex.debug import checked_simulate
    from ngc_adex.simulate import simulate
    with Context(unique_name("ports_simulate")):
        z = AdExCell("z", 2, receptors="aeif_cond_exp")
    for run in (simulate, checked_simulate):
        with pytest.raises(ValueError, match="receptor ports"):
            run(z, 10., 0.1, 100.)
