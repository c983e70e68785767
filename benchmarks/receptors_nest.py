"""Synaptic receptors: NEST's aeif_cond_exp, aeif_cond_alpha, aeif_cond_beta_multisynapse and
aeif_psc_exp against the reference solver (issue 15).

One Brette-Gerstner (2005) neuron (NEST's aeif defaults, V_reset = E_L) with a constant current
I_e, driven for 500 ms by fixed, seeded Poisson trains on the 0.1 ms grid: N_EX excitatory and
N_IN inhibitory inputs at RATE_HZ each, into

  cond_exp    two exp conductances (NEST aeif_cond_exp defaults: E_ex 0, E_in -85 mV,
              tau_syn_ex 0.2, tau_syn_in 2 ms)
  cond_alpha  two alpha conductances (aeif_cond_alpha, same defaults)
  cond_beta   two beta conductances (aeif_cond_beta_multisynapse, receptors 1 and 2:
              E_rev 0 / -85 mV, tau_rise 0.2 / 0.5 ms, tau_decay 2 / 5 ms)
  psc_exp     two exp currents (aeif_psc_exp defaults: tau_syn_ex 0.2, tau_syn_in 2 ms;
              inhibitory weights negative, in pA)

Every problem is run with and without I_e's suprathreshold part (``_drive`` and ``_rest``
variants: ``I_DRIVE`` and ``I_REST`` pA).  The reference (``ngc_adex.reference``, scipy DOP853 at
rtol 1e-11, exact receptor states, restarts at every event) gives the spike times; every
registered runner (see ``RUNNERS``) is compared with them: spike counts, and the mean / max
|spike time error| over the spikes matched in order (the first min(n_ref, n) of each).

NEST (optional: ``pip install nest-simulator``; the NEST rows are left out when ``import nest``
fails) runs at resolution 0.1 and 0.001 ms with default solver settings (gsl_error_tol 1e-6).
Timing convention: an input at reference time t_e is a spike_generator spike at t_e - h with
delay h (h the resolution), so that NEST adds its weight at the end of the step ending at t_e,
i.e. the conductance jumps at t_e as in the reference; ``check_nest_timing`` verifies it on a
single event per model (printed before the table).  NEST reports spikes at the end of the step
in which V crossed V_peak, so its error at h = 0.1 ms is up to one step by construction.

Adding a row (e.g. one of ngc_adex's cell integrators): a function ``fn(problem) -> spike times
(ms)``, registered with ``register_runner(name, fn)``; ``problem`` is a :class:`Problem`: its
``params`` (physical AdEx dict), ``I`` (pA), ``T`` (ms), ``receptors`` and ``events`` (the
reference's format: per receptor, event times on the 0.1 ms grid and weights), ``inputs`` (the
per-input trains, for simulators that connect sources one by one) and ``model`` (the NEST model).

Measured (NEST 3.10.0 from pip, seed 2024, 295 input events per problem; reference 5-12 spikes
per problem, ~1 s each): NEST reports every spike in the grid step that contains the reference
spike, at h = 0.1 ms and at h = 0.001 ms ("off-step" 0 on all 8 problems, equal spike counts);
|spike time error| mean 0.045-0.067 / max < 0.1 ms at h = 0.1, mean 3.5e-4-5.8e-4 / max < 1e-3
ms at h = 0.001 (bias +h/2: the step-end convention).  The single-event check: NEST's receptor
state on the grid equals the reference's to 2e-8-7e-8 of the weight (gsl_error_tol 1e-6).

Usage::

    python benchmarks/receptors_nest.py            # the table (NEST rows when nest imports)
    python benchmarks/receptors_nest.py --json out.json
"""
import argparse
import importlib
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ngc_adex.reference import simulate_reference  # noqa: E402

T = 500.0
GRID = 0.1  # ms: the input trains' grid
SEED = 2024
N_EX, N_IN, RATE_HZ = 20, 10, 20.0
I_DRIVE, I_REST = 700.0, 500.0  # pA: regular firing without input / subthreshold without input

#: Brette & Gerstner (2005) = NEST's aeif defaults except V_reset (NEST: -60 mV)
BG = dict(C=281.0, gL=30.0, EL=-70.6, VT=-50.4, DT=2.0, a=4.0, tau_w=144.0, b=80.5, Vr=-70.6, V_peak=0.0)

#: (name, NEST model, receptors (reference format), excitatory weight, inhibitory weight);
#: weights in nS (conductances) or pA (currents); the inhibitory current weight is negative
PROBLEM_SPECS = (
    ("cond_exp", "aeif_cond_exp",
     [dict(kind="exp", tau_decay=0.2, E_rev=0.0), dict(kind="exp", tau_decay=2.0, E_rev=-85.0)], 60.0, 6.0),
    ("cond_alpha", "aeif_cond_alpha",
     [dict(kind="alpha", tau_decay=0.2, E_rev=0.0), dict(kind="alpha", tau_decay=2.0, E_rev=-85.0)], 25.0, 2.5),
    ("cond_beta", "aeif_cond_beta_multisynapse",
     [dict(kind="beta", tau_rise=0.2, tau_decay=2.0, E_rev=0.0),
      dict(kind="beta", tau_rise=0.5, tau_decay=5.0, E_rev=-85.0)], 4.0, 1.0),
    ("psc_exp", "aeif_psc_exp",
     [dict(kind="exp", tau_decay=0.2, E_rev=None), dict(kind="exp", tau_decay=2.0, E_rev=None)], 3000.0, -250.0),
)


class Problem:
    """One benchmark problem: the neuron, its current and its input.

    Attributes: name, model (the NEST model), params (physical AdEx parameters), I (pA), T (ms),
    receptors (reference format), inputs (per receptor: a list of (times, weight) per input
    source, times on the GRID), events (per receptor: (times, weights), all inputs merged).
    """

    def __init__(self, name, model, params, I, receptors, inputs, T=T):
        self.name, self.model, self.params, self.I, self.T = name, model, dict(params), float(I), float(T)
        self.receptors = [dict(r) for r in receptors]
        self.inputs = inputs
        self.events = []
        for trains in inputs:
            times = np.concatenate([tr for tr, _ in trains]) if trains else np.empty(0)
            weights = np.concatenate([np.full(len(tr), w) for tr, w in trains]) if trains else np.empty(0)
            order = np.argsort(times, kind="stable")
            self.events.append((times[order], weights[order]))


def poisson_trains(rng, n, rate_hz, T=T, grid=GRID):
    """n Poisson trains on the grid (ms), each without repeated grid times, from 2 grid steps on
    (so that NEST can emit them one step early at both resolutions)."""
    out = []
    k_max = int(round(T / grid))
    for _ in range(n):
        k = rng.integers(2, k_max, rng.poisson(rate_hz * T / 1000.0))
        out.append(np.unique(k) * grid)
    return out


def make_problems(seed=SEED):
    """The benchmark problems: every spec with I_DRIVE and I_REST, all with the same trains."""
    rng = np.random.default_rng(seed)
    ex = poisson_trains(rng, N_EX, RATE_HZ)
    inh = poisson_trains(rng, N_IN, RATE_HZ)
    out = []
    for name, model, receptors, w_ex, w_in in PROBLEM_SPECS:
        inputs = [[(tr, w_ex) for tr in ex], [(tr, w_in) for tr in inh]]
        for tag, I in (("drive", I_DRIVE), ("rest", I_REST)):
            out.append(Problem(f"{name}_{tag}", model, BG, I, receptors, inputs))
    return out


def reference_spikes(problem, **kw):
    """The reference spike times (ms) of a problem."""
    return simulate_reference(problem.params, problem.T, I=problem.I, receptors=problem.receptors,
                              events=problem.events, **kw)["spikes"]


# ----------------------------------------------------------------------------
# runners: name -> fn(problem) -> spike times (ms)
# ----------------------------------------------------------------------------
RUNNERS = {}
#: runner name -> the time grid (ms) on which it reports spikes (None: continuous times)
RUNNER_GRID = {}


def register_runner(name, fn, grid=None):
    """Adds a row to the table: ``fn(problem)`` returns that simulator's spike times (ms).

    ``grid``: the step (ms) when the runner reports spikes at the end of the step in which they
    happen (NEST; a cell's ``tols``); the table then also counts the spikes not reported in the
    step that contains the reference spike ("off-step")."""
    RUNNERS[name] = fn
    RUNNER_GRID[name] = grid
    return fn


def nest_available():
    try:
        importlib.import_module("nest")
    except Exception:  # ImportError, or a broken installation
        return False
    return True


def _nest_neuron(nest, problem):
    p = problem.params
    params = dict(C_m=p["C"], g_L=p["gL"], E_L=p["EL"], V_th=p["VT"], Delta_T=p["DT"], a=p["a"],
                  tau_w=p["tau_w"], b=p["b"], V_reset=p["Vr"], V_peak=p["V_peak"], t_ref=0.0, I_e=problem.I,
                  V_m=p["EL"], w=0.0)
    rec = problem.receptors
    if problem.model == "aeif_cond_beta_multisynapse":
        params.update(E_rev=[r["E_rev"] for r in rec], tau_rise=[r["tau_rise"] for r in rec],
                      tau_decay=[r["tau_decay"] for r in rec])
    elif problem.model in ("aeif_cond_exp", "aeif_cond_alpha"):
        params.update(E_ex=rec[0]["E_rev"], E_in=rec[1]["E_rev"], tau_syn_ex=rec[0]["tau_decay"],
                      tau_syn_in=rec[1]["tau_decay"])
    elif problem.model in ("aeif_psc_exp", "aeif_psc_alpha"):
        params.update(tau_syn_ex=rec[0]["tau_decay"], tau_syn_in=rec[1]["tau_decay"])
    else:
        raise ValueError(f"no NEST mapping for {problem.model}")
    return nest.Create(problem.model, params=params)


def _nest_connect(nest, problem, neuron, h):
    """One spike_generator per input source; spikes at t_e - h with delay h (see the docstring)."""
    multi = problem.model == "aeif_cond_beta_multisynapse"
    for k, trains in enumerate(problem.inputs):
        for times, w in trains:
            if len(times) == 0:
                continue
            steps = np.round(np.asarray(times) / h).astype(np.int64) - 1
            gen = nest.Create("spike_generator", params={"spike_times": np.round(steps * h, 9).tolist()})
            if not multi and problem.receptors[k].get("E_rev") is not None and k == 1:
                w = -w  # NEST's two-port models: a negative weight is the inhibitory conductance
            syn = {"weight": float(w), "delay": h}
            if multi:
                syn["receptor_type"] = k + 1
            nest.Connect(gen, neuron, syn_spec=syn)


def run_nest(problem, h, record=None):
    """NEST's spike times (ms) for a problem at resolution h (ms); with ``record`` (a list of
    recordables) also the multimeter's {"times", name: values} at interval h."""
    import nest
    nest.ResetKernel()
    if hasattr(nest, "VerbosityLevel"):  # NEST >= 3.9
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    nest.resolution = h
    neuron = _nest_neuron(nest, problem)
    _nest_connect(nest, problem, neuron, h)
    sr = nest.Create("spike_recorder")
    nest.Connect(neuron, sr)
    mm = None
    if record:
        mm = nest.Create("multimeter", params={"record_from": list(record), "interval": h})
        nest.Connect(mm, neuron)
    nest.Simulate(problem.T)
    spikes = np.sort(np.asarray(sr.get("events")["times"], dtype=float))
    if mm is None:
        return spikes
    ev = mm.get("events")
    return spikes, {k: np.asarray(v, dtype=float) for k, v in ev.items() if k in ("times", *record)}


_NEST_G_EX = {"aeif_cond_exp": "g_ex", "aeif_cond_alpha": "g_ex", "aeif_cond_beta_multisynapse": "g_1",
              "aeif_psc_exp": "I_syn_ex", "aeif_psc_alpha": "I_syn_ex"}


def check_nest_timing(problems, t_event=10.0, h=GRID, t_end=25.0):
    """One excitatory event at t_event: NEST's first receptor's state on the grid against the
    reference's.  Returns {model: (max |difference| (nS or pA), first grid time with a nonzero
    NEST state, weight)}."""
    out = {}
    for prob in problems:
        if prob.model in out:
            continue
        w = prob.inputs[0][0][1]
        single = Problem("timing", prob.model, prob.params, 0.0, prob.receptors,
                         [[(np.array([t_event]), w)], []], T=t_end)
        _, rec = run_nest(single, h, record=[_NEST_G_EX[prob.model]])
        t = rec["times"]
        g_nest = rec[_NEST_G_EX[prob.model]]
        g_ref = simulate_reference(single.params, single.T, I=0.0, receptors=single.receptors,
                                   events=single.events, t_eval=t)["g"][0]
        first = float(t[np.nonzero(g_nest)[0][0]]) if np.any(g_nest) else float("nan")
        out[prob.model] = (float(np.max(np.abs(g_nest - g_ref))), first, float(w))
    return out


def _nest_runner(h):
    return lambda problem: run_nest(problem, h)


if nest_available():
    register_runner("NEST h=0.1", _nest_runner(0.1), grid=0.1)
    register_runner("NEST h=0.001", _nest_runner(0.001), grid=0.001)


def run_ngc_adex(problem, method, dt=GRID, dtype="float32"):
    """Spike times (ms) of this package's cell numerics (the crossing times; float64 needs
    jax_enable_x64) on a problem: the events of step (k dt, (k+1) dt] act at k dt, as the
    cell's ports take them."""
    import jax
    import jax.numpy as jnp
    from ngc_adex import from_physical, numerics
    from ngc_adex.numerics import receptors as R
    p = problem.params
    kw = from_physical(C=p["C"], g_L=p["gL"], E_L=p["EL"], V_T=p["VT"], Delta_T=p["DT"], V_reset=p["Vr"],
                       V_peak=p["V_peak"], a=p["a"], tau_w=p["tau_w"], b=p["b"])
    recs = [R.ReceptorParams(r["kind"], r["tau_decay"], r.get("tau_rise"), r["E_rev"]) for r in problem.receptors]
    c = numerics.coefficients(numerics.AdExParams(**{k: np.float64(kw[k]) for k in numerics.AdExParams._fields}),
                              dtype, recs)
    n = int(round(problem.T / dt))
    weights = np.zeros((n, len(recs), 1, 1))
    for k, (times, w) in enumerate(problem.events):
        np.add.at(weights[:, k, 0, 0], np.round(np.asarray(times) / dt).astype(int), w)
    z = jnp.zeros((1, 1), dtype)
    state = numerics.AdExState(z + kw["v0"], z, z, z, z, z)
    syn = R.ReceptorState(jnp.zeros((len(recs), 1, 1), dtype), jnp.zeros((len(recs), 1, 1), dtype))

    def body(carry, x):
        i, q = x
        st, g = numerics.advance(carry[0], problem.I, (i + 1) * dt, dt, c, method, False, True, carry[1], q)
        return (st, g), (st.s[0, 0], st.t_spike[0, 0])

    _, (s, t_spike) = jax.jit(lambda: jax.lax.scan(body, (state, syn), (
        jnp.arange(n, dtype=dtype), jnp.asarray(weights, dtype))))()
    s, t_spike = np.asarray(s), np.asarray(t_spike, dtype=np.float64)
    return t_spike[s > 0]


for _method in ("euler", "midpoint", "rk4", "precise"):
    register_runner(f"ngc_adex {_method}", lambda problem, m=_method: run_ngc_adex(problem, m))


# ----------------------------------------------------------------------------
# comparison
# ----------------------------------------------------------------------------
def compare(ref, s, grid=None):
    """Over the first m = min(len(ref), len(s)) spikes, in order: dict with n (len(s)), mean_err
    and max_err (|s - ref|, ms), bias (mean of s - ref, ms) and, for a grid, off_step (spikes of s
    not at the end of the grid step containing the reference spike, plus |len(s) - len(ref)|)."""
    m = min(len(ref), len(s))
    out = dict(n=len(s), mean_err=float("nan"), max_err=float("nan"), bias=float("nan"), off_step=None)
    if m:
        d = np.asarray(s[:m]) - ref[:m]
        out.update(mean_err=float(np.mean(np.abs(d))), max_err=float(np.max(np.abs(d))), bias=float(np.mean(d)))
    if grid is not None:
        step_end = np.ceil(ref[:m] / grid - 1e-9) * grid
        out["off_step"] = int(np.count_nonzero(np.abs(np.asarray(s[:m]) - step_end) > 1e-6 * grid)
                              + abs(len(s) - len(ref)))
    return out


def run(problems, runners=None, verbose=True):
    runners = RUNNERS if runners is None else runners
    rows = []
    for prob in problems:
        t0 = time.perf_counter()
        ref = reference_spikes(prob)
        ref_s = time.perf_counter() - t0
        n_events = sum(len(e[0]) for e in prob.events)
        rows.append(dict(problem=prob.name, runner="reference", n=len(ref), mean_err=0.0, max_err=0.0, bias=0.0,
                         off_step=None, seconds=ref_s, n_events=n_events, spikes=ref.tolist()))
        if verbose:
            print(f"  {prob.name}: reference {len(ref)} spikes ({n_events} input events, {ref_s:.1f} s)",
                  flush=True)
        for name, fn in runners.items():
            t0 = time.perf_counter()
            s = np.asarray(fn(prob), dtype=float)
            sec = time.perf_counter() - t0
            rows.append(dict(problem=prob.name, runner=name, **compare(ref, s, RUNNER_GRID.get(name)),
                             seconds=sec, n_events=n_events))
    return rows


def table(rows):
    lines = [f"{'problem':<18} {'runner':<14} {'spikes':>6} {'ref':>4} {'mean |dt| ms':>12} "
             f"{'max |dt| ms':>11} {'bias ms':>10} {'off-step':>8} {'s':>5}"]
    n_ref = {r["problem"]: r["n"] for r in rows if r["runner"] == "reference"}
    for r in rows:
        if r["runner"] == "reference":
            continue
        off = "-" if r["off_step"] is None else str(r["off_step"])
        lines.append(f"{r['problem']:<18} {r['runner']:<14} {r['n']:>6} {n_ref[r['problem']]:>4} "
                     f"{r['mean_err']:>12.3e} {r['max_err']:>11.3e} {r['bias']:>+10.2e} {off:>8} "
                     f"{r['seconds']:>5.1f}")
    if len(lines) == 1:
        lines += [f"{r['problem']:<18} {'reference':<16} {r['n']:>6} {r['n']:>4}" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write the rows (and the timing check) to this file")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    problems = make_problems(args.seed)
    out = {"T": T, "grid": GRID, "seed": args.seed, "inputs": dict(n_ex=N_EX, n_in=N_IN, rate_hz=RATE_HZ)}
    if nest_available():
        import nest
        print(f"NEST {nest.__version__}: single-event timing check (h = {GRID} ms; event at 10 ms):")
        chk = check_nest_timing(problems)
        for model, (err, first, w) in chk.items():
            print(f"  {model:<28} first nonzero state at {first:.1f} ms, max |NEST - reference| / weight = "
                  f"{err / abs(w):.1e}")
        out["timing_check"] = chk
    else:
        print("NEST is not importable: only the reference rows (pip install nest-simulator for NEST's)")
    rows = run(problems)
    print(table(rows))
    out["rows"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
