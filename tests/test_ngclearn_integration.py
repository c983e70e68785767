"""ngc_adex.AdExCell inside real ngc-learn circuits.

Every expectation here is independent of ngc_adex's own code: ngc-learn's built-in AdExCell (same spikes,
v and w to float32 rounding under ``integration_type="euler"``), ngc-learn cells run alone in their own Context, the synapse algebra
recomputed with numpy from the recorded spikes, and the trace-STDP rule re-implemented in numpy.
"""
import uuid

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from ngclearn import Context, MethodProcess, Summation
from ngclearn.components import (BernoulliCell, DenseSynapse, IzhikevichCell, LIFCell, PoissonCell,
                                 TraceSTDPSynapse, VarTrace)
from ngclearn.components.neurons.spiking.adExCell import AdExCell as NgcAdExCell
from ngclearn.utils.distribution_generator import DistributionGenerator as DG
from ngcsimlib.global_state import stateManager

from conftest import processes, settled_state

import ngc_adex

DT = 0.1


def _name(prefix):
    """A Context name used nowhere else (Context names are process-wide singletons)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _rows(process, n_steps, dt=DT, first=0):
    """Scan rows for steps first+1 .. first+n_steps, t = end of the step."""
    return jnp.asarray(process.pack_rows(n_steps, t=lambda i: (first + i + 1) * dt, dt=dt))


def _scan(process, n_steps, dt=DT):
    """Scans the process from the live global state, writes the final state back, returns the
    watched values as numpy arrays (n_steps, batch, units)."""
    final, watched = process.scan(_rows(process, n_steps, dt))
    stateManager.set_state(settled_state(final))
    return [np.asarray(w) for w in watched]


_DRIVEN = {}


def _scan_driven(process, comp, drive, dt=DT):
    """Scans the process while writing ``drive[k]`` into the (unwired) compartment ``comp`` before
    step k; returns the watched values as numpy arrays (the scan is compiled once per process)."""
    key = (id(process), comp.root)
    if key not in _DRIVEN or _DRIVEN[key][0] is not process:
        run = process.run.compiled

        def body(state, x):
            value, row = x
            return run({**state, comp.root: value}, row)

        _DRIVEN[key] = (process, jax.jit(lambda state, xs: jax.lax.scan(body, state, xs)))
    rows = _rows(process, len(drive), dt)
    final, watched = _DRIVEN[key][1](settled_state(stateManager.state), (jnp.asarray(drive), rows))
    stateManager.set_state(settled_state(final))
    return [np.asarray(w) for w in watched]


def _const(comp, value):
    comp.set(jnp.asarray(np.asarray(value, dtype=np.float64), dtype=comp.get().dtype))


# ----------------------------------------------------------------------------------------------------
# namespace merging: ngc_adex next to ngc-learn's own cells in ONE MethodProcess
# ----------------------------------------------------------------------------------------------------
N_MIX = 4
T_MIX = 400                           # 40 ms
J_ADEX = [[0., 16., 30., 50.]]        # silent, near rheobase, tonic, fast tonic
J_LIF = [[0., 10., 16., 30.]]         # LIF threshold needs j > 13
J_IZH = [[0., 5., 10., 20.]]


_AS_ADEX = ("v", "w", "s", "tols")
# cell name -> (make(name), input current held, compartments watched)
_OURS = (lambda name: ngc_adex.AdExCell(name, N_MIX, integration_type="euler"), J_ADEX, _AS_ADEX)
_THEIRS = (lambda name: NgcAdExCell(name, N_MIX), J_ADEX, _AS_ADEX)
_IZH = (lambda name: IzhikevichCell(name, N_MIX), J_IZH, _AS_ADEX)
_LIF = (lambda name: LIFCell(name, N_MIX, tau_m=10., refract_time=1.), J_LIF, ("v", "s", "tols"))


def _run_together(prefix, **cells):
    """Steps ``cells`` (see above) in one process, in the order given, for T_MIX steps from their reset
    with their currents held; returns name -> {compartment: values}."""
    with Context(_name(prefix)):
        made = {name: make(name) for name, (make, _, _) in cells.items()}
        watched = [(name, comp) for name, (_, _, comps) in cells.items() for comp in comps]
        adv, rst = processes(*made.values(), watch=[getattr(made[name], comp) for name, comp in watched])
    rst.run()
    for name, (_, current, _) in cells.items():
        _const(made[name].j, current)
    out = {name: {} for name in cells}
    for (name, comp), values in zip(watched, _scan(adv, T_MIX)):
        out[name][comp] = values
    return out


@pytest.fixture(scope="module")
def mixed_runs():
    """Two mixed processes (ngc-learn's AdExCell and IzhikevichCell cannot share one, see below) and
    the references run alone."""
    return {"p1": _run_together("mix_adex", theirs=_THEIRS, ours=_OURS, lif=_LIF),
            "p2": _run_together("mix_izh", izh=_IZH, ours=_OURS, lif=_LIF),
            "lif_alone": _run_together("lif_alone", lif=_LIF)["lif"],
            "izh_alone": _run_together("izh_alone", izh=_IZH)["izh"]}


@pytest.mark.slow
def test_euler_matches_builtin_adex_in_one_process(mixed_runs):
    ours, theirs = mixed_runs["p1"]["ours"], mixed_runs["p1"]["theirs"]
    for k in ("v", "w", "s", "tols"):
        assert np.isfinite(theirs[k]).all(), f"built-in AdExCell left the finite regime ({k})"
        assert ours[k].dtype == theirs[k].dtype, k
    for k in ("s", "tols"):
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    np.testing.assert_allclose(ours["v"], theirs["v"], rtol=0, atol=5e-2)     # float32 rounding, grown in upswings (mV)
    np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-5, atol=1e-4)
    counts = ours["s"].sum(axis=0)[0]
    assert counts[0] == 0 and counts[2] >= 2 and counts[3] > counts[2], counts
    # tols is the t of the last spiking step
    last = T_MIX - 1 - np.argmax(ours["s"][::-1, 0, 3])
    assert ours["tols"][-1, 0, 3] == np.float32((last + 1) * DT)


@pytest.mark.slow
def test_lif_in_mixed_process_matches_lif_alone(mixed_runs):
    alone = mixed_runs["lif_alone"]
    assert alone["s"].sum() > 0
    for proc in ("p1", "p2"):
        for k in ("v", "s", "tols"):
            np.testing.assert_array_equal(mixed_runs[proc]["lif"][k], alone[k], err_msg=f"{proc} {k}")


@pytest.mark.slow
def test_izhikevich_in_mixed_process_matches_izhikevich_alone(mixed_runs):
    alone, mixed = mixed_runs["izh_alone"], mixed_runs["p2"]["izh"]
    assert alone["s"].sum() > 0
    for k in ("v", "w", "s", "tols"):
        np.testing.assert_array_equal(mixed[k], alone[k], err_msg=k)


@pytest.mark.slow
def test_ngc_adex_next_to_izhikevich_is_unaffected(mixed_runs):
    for k in ("v", "w", "s", "tols"):
        np.testing.assert_array_equal(mixed_runs["p2"]["ours"][k], mixed_runs["p1"]["ours"][k], err_msg=k)


def test_only_ngclearns_own_adex_and_izhikevich_clash():
    """ngc_adex shares processes with each built-in cell (above); the one pairing that cannot share a
    process is ngc-learn's own AdExCell with its IzhikevichCell (both define module globals _dfv/_dfw
    that a MethodProcess merges into one namespace), with or without ngc_adex."""
    with Context(_name("builtin_clash")):
        theirs = NgcAdExCell("theirs", N_MIX)
        izh = IzhikevichCell("izh", N_MIX)
        adv = MethodProcess("adv") >> theirs.advance_state >> izh.advance_state
    with pytest.raises(ValueError):
        adv.run(t=0.1, dt=0.1)


# ----------------------------------------------------------------------------------------------------
# circuits: encoders -> DenseSynapse -> AdEx -> DenseSynapse -> LIF, step by step and with scan
# ----------------------------------------------------------------------------------------------------
# every synapse is 8 x 8: constructing a DenseSynapse of a new shape costs seconds of XLA compilation
N = 8
T_CIRC = 100
DT_CIRC = 0.25
ADEX_KW = dict(tau_m=np.linspace(10., 20., N).tolist(), b=[0.5, 1., 2., 0.] * 2, refract_time=1.)
LIF_KW = dict(tau_m=10., refract_time=1.)
CIRC_WATCH = ("exc", "inh", "W_exc", "W_inh", "probe_j", "v", "w", "s", "tols", "t_spike", "ref_left",
              "probe_v", "probe_s", "W_out", "lif_j", "lif_v", "lif_s")


@pytest.fixture(scope="module")
def circuit():
    """PoissonCell -> W_exc -> probe AdEx (euler);  Summation(W_exc, BernoulliCell -> W_inh) -> AdEx (rk4)
    -> W_out -> LIFCell.  Run step by step (reading the Summation-wired j after each step), then from the
    same start state with scan."""
    method = "rk4"
    k = jax.random.split(jax.random.PRNGKey(7), 6)
    with Context(_name("circuit")):
        exc = PoissonCell("exc", N, target_freq=1000., key=k[0])
        inh = BernoulliCell("inh", N, key=k[1])
        W_exc = DenseSynapse("W_exc", (N, N), weight_init=DG.uniform(15., 30.), key=k[2])
        W_inh = DenseSynapse("W_inh", (N, N), weight_init=DG.uniform(-4., -1.), key=k[3])
        adex = ngc_adex.AdExCell("adex", N, integration_type=method, **ADEX_KW)
        probe = ngc_adex.AdExCell("probe", N, integration_type="euler")   # fed by W_exc alone
        W_out = DenseSynapse("W_out", (N, N), weight_init=DG.uniform(300., 600.), key=k[4])
        lif = LIFCell("lif", N, key=k[5], **LIF_KW)

        exc.outputs >> W_exc.inputs
        inh.outputs >> W_inh.inputs
        W_exc.outputs >> probe.j
        Summation(W_exc.outputs, W_inh.outputs) >> adex.j
        adex.s >> W_out.inputs
        W_out.outputs >> lif.j

        # adex.j is wired to an operator and cannot be watched; it is read step by step instead
        advance, reset = processes(
            exc, inh, W_exc, W_inh, adex, probe, W_out, lif,
            watch=(exc.outputs, inh.outputs, W_exc.outputs, W_inh.outputs, probe.j, adex.v, adex.w, adex.s,
                   adex.tols, adex.t_spike, adex.ref_left, probe.v, probe.s, W_out.outputs, lif.j, lif.v, lif.s))
    reset.run()
    _const(exc.inputs, np.ones((1, N)))
    _const(inh.inputs, np.full((1, N), 0.4))
    stateManager.set_state(settled_state(stateManager.state))
    start = dict(stateManager.state)

    stepped, adex_j = [], []
    for i in range(T_CIRC):
        _, watched = advance.run(t=(i + 1) * DT_CIRC, dt=DT_CIRC)
        stateManager.set_state(settled_state(stateManager.state))
        stepped.append([np.asarray(w) for w in watched])
        adex_j.append(np.asarray(adex.j.get()))
    stepped = {name: np.stack([row[i] for row in stepped]) for i, name in enumerate(CIRC_WATCH)}
    stepped["adex_j"] = np.stack(adex_j)

    stateManager.set_state(start)
    scanned = dict(zip(CIRC_WATCH, _scan(advance, T_CIRC, DT_CIRC)))
    weights = {n: np.asarray(c.weights.get(), dtype=np.float64) for n, c in
               (("W_exc", W_exc), ("W_inh", W_inh), ("W_out", W_out))}
    return {"method": method, "step": stepped, "scan": scanned, "weights": weights}


def _close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), **kw)


@pytest.mark.slow
def test_circuit_step_by_step_equals_scan(circuit):
    step, scan = circuit["step"], circuit["scan"]
    for name in ("exc", "inh", "s", "probe_s", "lif_s"):
        np.testing.assert_array_equal(step[name], scan[name], err_msg=name)
    for name in CIRC_WATCH:
        _close(step[name], scan[name], rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_synapses_deliver_weighted_spikes(circuit):
    step, w = circuit["step"], circuit["weights"]
    x_exc, x_inh = step["exc"][:, 0].astype(np.float64), step["inh"][:, 0].astype(np.float64)
    assert set(np.unique(x_exc)) == {0., 1.} and set(np.unique(x_inh)) == {0., 1.}
    drive_exc = x_exc @ w["W_exc"]
    drive_inh = x_inh @ w["W_inh"]
    tol = dict(rtol=1e-5, atol=1e-3)
    _close(step["W_exc"][:, 0], drive_exc, **tol)
    _close(step["probe_j"][:, 0], drive_exc, **tol)                   # PoissonCell -> W -> AdEx: j = W^T x
    _close(step["W_inh"][:, 0], drive_inh, **tol)
    assert (drive_inh <= 0).all() and (drive_inh < 0).any()
    _close(step["adex_j"][:, 0], drive_exc + drive_inh, **tol)       # Summation of E and I synapses
    _close(step["adex_j"], step["W_exc"] + step["W_inh"], rtol=0, atol=1e-5)
    s = step["s"][:, 0].astype(np.float64)
    _close(step["W_out"][:, 0], s @ w["W_out"], **tol)               # AdEx -> W -> LIF
    _close(step["lif_j"][:, 0], s @ w["W_out"], **tol)


@pytest.mark.slow
def test_circuit_cells_fire(circuit):
    step = circuit["step"]
    assert (step["s"].sum(axis=0) >= 1).all(), step["s"].sum(axis=0)
    assert (step["probe_s"].sum(axis=0) >= 1).all(), step["probe_s"].sum(axis=0)
    assert step["lif_s"].sum() >= 1
    for name in ("s", "probe_s", "lif_s"):
        assert set(np.unique(step[name])) == {0., 1.}, name
    # refractoriness (1 ms = 4 steps): no AdEx spike follows another within the refractory period
    for i in range(N):
        assert np.diff(np.flatnonzero(step["s"][:, 0, i])).min(initial=99) > 1. / DT_CIRC


@pytest.mark.slow
def test_circuit_adex_and_lif_behave_as_when_run_alone(circuit):
    """Driving lone cells with the recorded input currents reproduces the circuit's cells."""
    step, method = circuit["step"], circuit["method"]
    with Context(_name("alone")):
        adex = ngc_adex.AdExCell("adex", N, integration_type=method, **ADEX_KW)
        adv, rst = processes(adex, watch=(adex.v, adex.w, adex.s, adex.tols))
    rst.run()
    v, w, s, tols = _scan_driven(adv, adex.j, step["W_exc"] + step["W_inh"], DT_CIRC)
    np.testing.assert_array_equal(s, step["s"])
    _close(v, step["v"], rtol=1e-6, atol=1e-6)
    _close(w, step["w"], rtol=1e-6, atol=1e-6)
    _close(tols, step["tols"], rtol=1e-6, atol=1e-6)

    with Context(_name("alone")):
        lif = LIFCell("lif", N, **LIF_KW)
        adv, rst = processes(lif, watch=(lif.v, lif.s))
    rst.run()
    v, s = _scan_driven(adv, lif.j, step["lif_j"], DT_CIRC)
    np.testing.assert_array_equal(s, step["lif_s"])
    _close(v, step["lif_v"], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# trace STDP driven by AdEx spikes
# ----------------------------------------------------------------------------------------------------
T_STDP = 800                     # 80 ms at DT
TAU_TR, A_PLUS, A_MINUS, W0 = 5., 0.02, 0.015, 0.5
J_POST = 30.                     # regular firing, ISI ~ 20 ms with the default parameters
# pre neuron i fires OFFSETS[i] steps (of 0.1 ms) from every post spike; None: silent
OFFSETS = (-10, -20, -50, 10, 20, 50, None, None)


def _stdp_rule(pre, post, dt):
    """Numpy re-implementation of TraceSTDPSynapse (mu = 0, pretrace_target = 0, eta = 1, tau_w = 0)
    with exponential additive VarTraces (a_delta = 1): the weight matrix after every step."""
    decay = np.exp(-dt / TAU_TR)
    x_pre, x_post = np.zeros(pre.shape[1]), np.zeros(post.shape[1])
    W = np.full((pre.shape[1], post.shape[1]), W0)
    out = []
    for s_pre, s_post in zip(pre, post):
        x_pre = x_pre * decay + s_pre
        x_post = x_post * decay + s_post
        W = np.clip(W + A_PLUS * np.outer(x_pre, s_post) - A_MINUS * np.outer(s_pre, x_post), 0., 1.)
        out.append(W)
    return np.stack(out)


@pytest.mark.slow
def test_trace_stdp_learns_from_adex_spikes():
    k = jax.random.split(jax.random.PRNGKey(3), 2)
    with Context(_name("stdp")):
        pre = BernoulliCell("pre", N, key=k[0])
        post = ngc_adex.AdExCell("post", N, integration_type="rk4")
        tr_pre = VarTrace("tr_pre", N, tau_tr=TAU_TR, a_delta=1.)
        tr_post = VarTrace("tr_post", N, tau_tr=TAU_TR, a_delta=1.)
        syn = TraceSTDPSynapse("syn", (N, N), A_plus=A_PLUS, A_minus=A_MINUS, eta=1.,
                               weight_init=DG.constant(W0), w_bound=1., key=k[1])
        pre.outputs >> tr_pre.inputs
        post.s >> tr_post.inputs
        pre.outputs >> syn.inputs
        pre.outputs >> syn.preSpike
        post.s >> syn.postSpike
        tr_pre.outputs >> syn.preTrace
        tr_post.outputs >> syn.postTrace
        advance, reset = processes(pre, post, tr_pre, tr_post, syn, watch=(pre.outputs, post.s, syn.weights))
        advance >> syn.evolve
    reset.run()
    _const(post.j, np.full((1, N), J_POST))
    stateManager.set_state(settled_state(stateManager.state))
    start = dict(stateManager.state)

    # probe: with silent pre neurons, when does the AdEx fire? (the synapse does not feed it back)
    silent = np.zeros((T_STDP, 1, N), dtype=np.float32)
    _, post_probe, W_probe = _scan_driven(advance, pre.inputs, silent)
    np.testing.assert_array_equal(W_probe[-1], np.full((N, N), W0, dtype=np.float32))
    post_steps = np.flatnonzero(post_probe[:, 0, 0])
    assert (post_probe == post_probe[:, :, :1]).all()                # identical post neurons
    assert len(post_steps) >= 3 and np.diff(post_steps).min() > 150 and post_steps[0] > 50, post_steps

    drive = np.zeros_like(silent)                                   # Bernoulli with p = 0 / 1
    n_pairs = []
    for i, off in enumerate(OFFSETS):
        idx = post_steps + (off or 0)
        idx = idx[(idx >= 0) & (idx < T_STDP)] if off is not None else idx[:0]
        drive[idx, 0, i] = 1.
        n_pairs.append(len(idx))
    stateManager.set_state(start)
    pre_s, post_s, W = _scan_driven(advance, pre.inputs, drive)

    np.testing.assert_array_equal(pre_s, drive)                     # p = 1 always fires, p = 0 never
    np.testing.assert_array_equal(post_s, post_probe)               # plasticity does not touch the AdEx
    expected = _stdp_rule(pre_s[:, 0].astype(np.float64), post_s[:, 0].astype(np.float64), DT)
    _close(W, expected, rtol=0, atol=1e-5)

    dW = W[-1].astype(np.float64) - W0
    assert (dW == dW[:, :1]).all()                                  # same change towards every post cell
    ltp1, ltp2, ltp5, ltd1, ltd2, ltd5, silent1, silent2 = dW[:, 0]
    assert ltp1 > ltp2 > ltp5 > 0, dW[:, 0]      # pre before post: LTP, the stronger the closer
    assert ltd1 < ltd2 < ltd5 < 0, dW[:, 0]      # pre after post: LTD, the stronger the closer
    assert silent1 == 0 and silent2 == 0         # no pre spikes: no change
    # one pairing at 2 ms changes w by A * exp(-2 ms / tau_tr) (up to the small cross terms with the
    # neighbouring post spikes, ~20 ms away)
    assert ltp2 == pytest.approx(n_pairs[1] * A_PLUS * np.exp(-2. / TAU_TR), rel=0.1)
    assert ltd2 == pytest.approx(-n_pairs[4] * A_MINUS * np.exp(-2. / TAU_TR), rel=0.1)


# ----------------------------------------------------------------------------------------------------
# reset with a wired input
# ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_reset_leaves_wired_upstream_untouched():
    k = jax.random.split(jax.random.PRNGKey(0), 2)
    with Context(_name("reset")):
        src = BernoulliCell("src", 3, key=k[0])
        src2 = BernoulliCell("src2", 3, key=k[1])
        wired = ngc_adex.AdExCell("wired", 3, v0=-65.)
        summed = ngc_adex.AdExCell("summed", 3)
        free = ngc_adex.AdExCell("free", 3)
        src.outputs >> wired.j
        Summation(src.outputs, src2.outputs) >> summed.j
        advance, reset = processes(wired, summed, free)
    dtype = wired.v.get().dtype
    up = jnp.asarray([[1., 2., 3.]], dtype=dtype)
    up2 = jnp.asarray([[10., 20., 30.]], dtype=dtype)
    src.outputs.set(up)
    src2.outputs.set(up2)
    free.j.set(up)
    wired.v.set(wired.v.get() + 7.)
    wired.w.set(wired.w.get() + 1.)

    reset.run()

    np.testing.assert_array_equal(src.outputs.get(), up)         # upstream not overwritten
    np.testing.assert_array_equal(src2.outputs.get(), up2)
    np.testing.assert_array_equal(wired.j.get(), up)             # and still read through the wire
    np.testing.assert_array_equal(summed.j.get(), up + up2)
    np.testing.assert_array_equal(free.j.get(), np.zeros((1, 3)))  # an unwired j is cleared
    np.testing.assert_array_equal(wired.v.get(), np.full((1, 3), -65.))
    np.testing.assert_array_equal(wired.w.get(), np.zeros((1, 3)))
    # the compiled reset never assigns to an upstream compartment
    code = reset.view_compiled_method()
    assert f"ctx['{src.outputs.root}'] =" not in code
    assert f"ctx['{src2.outputs.root}'] =" not in code

    # stepping keeps every compartment a strongly typed array of the cell's dtype (a dtype or weak-type
    # change would make jax recompile the whole process on the next step)
    advance.run(t=DT, dt=DT)
    for cell in (wired, summed, free):
        for comp in ("v", "w", "s", "tols", "t_spike", "ref_left"):
            value = getattr(cell, comp).get()
            assert isinstance(value, jax.Array) and value.dtype == dtype and not value.weak_type, (cell.name, comp)
            assert value.shape == (1, 3)
    np.testing.assert_array_equal(src.outputs.get(), up)
