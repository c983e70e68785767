"""Shared helpers of the benchmarks: test problems, reference spike times,
running a population through ngc-learn's ``MethodProcess.scan``, and the
spike-train error measures.

Every population is simulated as ONE cell with per-neuron parameters (one
neuron per test problem), in float32, with constant currents switched on at
t = 0. Row ``i`` of the scan advances the cells from ``i*dt`` to ``(i+1)*dt``,
so it is passed ``t = (i+1)*dt``: a spike stamped with ``tols`` (grid time)
is the end of the step in which it happened; ``t_spike`` is ngc_adex's
interpolated crossing time.
"""
import hashlib
import itertools
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from ngclearn import Context, MethodProcess  # noqa: E402
from ngcsimlib.context import contextManager  # noqa: E402
from ngcsimlib.global_state import stateManager  # noqa: E402

import ngc_adex  # noqa: E402
from ngc_adex import NAUD_PATTERNS as NAUD  # noqa: E402  (the eight Naud et al. (2008) patterns, Fig. 4a-h)
from ngc_adex.reference import NEST_PARAMS, NEST_SPIKES, NEST_T, NEST_V0, NEST_W0  # noqa: E402
from ngc_adex.reference import spike_times as reference_spike_times  # noqa: E402

CHAOTIC = ("irregular",)
#: spikes of a chaotic pattern that are judged
CHAOTIC_SPIKES = 5
T_NAUD = 500.

BG_CURRENTS = tuple(np.linspace(400., 1600., 13))

BUILTIN = "ngclearn"
ADEX = "ngc_adex"

_PHYS_KEYS = ("C", "gL", "EL", "VT", "DT", "a", "tau_w", "b", "Vr", "V_peak")


# ----------------------------------------------------------------------------
# test problems
# ----------------------------------------------------------------------------
class Problem:
    """One neuron of a test population: physical parameters, current, initial
    state, duration judged, and the spikes judged (``n_judge``: None = all)."""

    def __init__(self, name, group, phys, current, v0=None, w0=0., T=T_NAUD, n_judge=None, ref=None):
        self.name, self.group, self.phys, self.current = name, group, dict(phys), float(current)
        self.v0 = phys["EL"] if v0 is None else float(v0)
        self.w0, self.T, self.n_judge, self.ref = float(w0), float(T), n_judge, ref


def naud_problems():
    out = []
    for name in NAUD:
        p = ngc_adex.preset(name)
        out.append(Problem(name, "naud", p, p["I"], n_judge=CHAOTIC_SPIKES if name in CHAOTIC else None))
    return out


def nest_problem():
    return Problem("nest_aeif", "nest", NEST_PARAMS, NEST_PARAMS["I"], v0=NEST_V0, w0=NEST_W0, T=NEST_T,
                   ref=NEST_SPIKES)


def bg_problems(currents=BG_CURRENTS):
    p = ngc_adex.preset("brette_gerstner_2005")
    return [Problem(f"bg_{I:.0f}pA", "bg", p, I) for I in currents]


def all_problems(bg_currents=BG_CURRENTS):
    return naud_problems() + [nest_problem()] + bg_problems(bg_currents)


# ----------------------------------------------------------------------------
# reference spike times (cached in benchmarks/out/, keyed by the reference's source)
# ----------------------------------------------------------------------------
def _reference_digest():
    with open(os.path.join(ROOT, "ngc_adex", "reference.py"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


def attach_references(problems, verbose=True):
    """Sets ``problem.ref`` (reference spike times on [0, T]) where not given."""
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "reference_cache.json")
    digest = _reference_digest()
    try:
        with open(path) as fh:
            cache = json.load(fh)
        if cache.get("_digest") != digest:
            cache = {"_digest": digest}
    except (OSError, ValueError):
        cache = {"_digest": digest}
    dirty = False
    t0 = time.perf_counter()
    for pr in problems:
        if pr.ref is not None:
            continue
        key = json.dumps([{k: pr.phys[k] for k in _PHYS_KEYS}, pr.current, pr.v0, pr.w0, pr.T], sort_keys=True)
        if key not in cache:
            cache[key] = reference_spike_times({k: pr.phys[k] for k in _PHYS_KEYS}, pr.T, I=pr.current,
                                               v0=pr.v0, w0=pr.w0).tolist()
            dirty = True
        pr.ref = np.asarray(cache[key])
    if dirty:
        with open(path, "w") as fh:
            json.dump(cache, fh)
        if verbose:
            print(f"# reference spike times computed in {time.perf_counter() - t0:.1f} s "
                  f"(scipy DOP853, rtol 1e-11; cached in {os.path.relpath(path, ROOT)})")
    return problems


# ----------------------------------------------------------------------------
# cells and scans
# ----------------------------------------------------------------------------
_counter = itertools.count()


def physical_arrays(problems):
    """Per-neuron physical parameter arrays (1, n) of a list of problems."""
    return {k: np.array([[pr.phys[k] for pr in problems]], dtype=np.float64) for k in _PHYS_KEYS}


def cell_kwargs(phys, v0, w0):
    """Constructor keywords (ngc-learn parameterisation) from physical arrays."""
    kw = ngc_adex.from_physical(C=phys["C"], g_L=phys["gL"], E_L=phys["EL"], V_T=phys["VT"],
                                Delta_T=phys["DT"], V_reset=phys["Vr"], V_peak=phys["V_peak"], a=phys["a"],
                                tau_w=phys["tau_w"], b=phys["b"])
    kw = {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v) for k, v in kw.items()}
    kw["v0"], kw["w0"] = v0, w0
    return kw


def supports_precise_times():
    """Whether ngc_adex.AdExCell has the ``precise_times`` switch (t_spike tracking)."""
    import inspect
    init = ngc_adex.AdExCell.__init__
    while True:  # deprecate_args hides the signature; look through wrappers and closures
        try:
            if "precise_times" in inspect.signature(init, follow_wrapped=True).parameters:
                return True
        except (TypeError, ValueError):
            pass
        cells = [c.cell_contents for c in (getattr(init, "__closure__", None) or ()) if callable(c.cell_contents)]
        if not cells:
            break
        init = cells[0]
    return "precise_times" in inspect.getsource(ngc_adex.AdExCell)


#: what a cell with receptors gets in each port every step (nS)
PORT_INPUT = 0.3


class Population:
    """A single cell (ngc_adex or ngc-learn's built-in) in its own Context,
    driven by ngc-learn's ``MethodProcess.scan`` with constant currents.

    ``impl`` is ``"ngc_adex"`` or ``"ngclearn"``; ``method`` the integrator;
    ``times``: ngc_adex's ``precise_times`` (None: the cell's default)."""

    def __init__(self, impl, method, kwargs, currents, watch=True, times=None):
        self.impl, self.method = impl, method
        self.ctx_name = f"bench{next(_counter)}_{impl}_{method}"
        n = int(np.size(currents))
        kwargs = dict(kwargs)
        if impl == ADEX and times is not None and supports_precise_times():
            kwargs["precise_times"] = bool(times)
        with Context(self.ctx_name) as ctx:
            if impl == ADEX:
                cell = ngc_adex.AdExCell("z", n_units=n, integration_type=method, **kwargs)
            else:
                from ngclearn.components.neurons.spiking.adExCell import AdExCell as BuiltinAdEx
                kwargs.pop("refract_time", None)
                cell = BuiltinAdEx("z", n_units=n, integration_type=method, **kwargs)
            advance = MethodProcess("advance") >> cell.advance_state
            reset = MethodProcess("reset") >> cell.reset
            if watch:
                advance.watch(cell.s, cell.t_spike if impl == ADEX else cell.tols)
        self.ctx, self.cell, self.advance, self.reset = ctx, cell, advance, reset
        reset.run()
        prefix = self.ctx_name + ":"
        state = {k: v for k, v in stateManager.state.items() if k.startswith(prefix)}
        state[cell.j.root] = jnp.asarray(np.reshape(currents, (1, n)), dtype=state[cell.v.root].dtype)
        for port in getattr(cell, "receptor_names", ()):  # a steady input into every receptor port (nS/step)
            state[getattr(cell, port).root] = jnp.full((1, n), PORT_INPUT, dtype=state[cell.v.root].dtype)
        self.state0 = state

    def rows(self, n_steps, dt):
        return jnp.array(self.advance.pack_rows(n_steps, t=lambda i: (i + 1) * dt, dt=dt))

    def scan(self, rows):
        final, watched = self.advance.scan(rows, current_state=self.state0, store_state=False,
                                           store_results=False)
        return final, watched

    def final_v(self, final):
        return np.asarray(final[self.cell.v.root])

    def close(self):
        """Unregisters the context and frees its arrays (ngcsimlib has no way to
        delete global-state keys; they are overwritten with scalars)."""
        contextManager.remove_context(self.ctx_name)
        stateManager.set_state({k: jnp.zeros(()) for k in stateManager.state if k.startswith(self.ctx_name + ":")})
        self.state0 = None


def spike_trains(impl, watched):
    """Per-neuron spike-time arrays from the watched (s, time) outputs."""
    s, tt = np.asarray(watched[0])[:, 0, :], np.asarray(watched[1])[:, 0, :]
    out = []
    for k in range(s.shape[1]):
        idx = np.nonzero(s[:, k] > 0)[0]
        out.append(tt[idx, k].astype(np.float64))
    return out


# ----------------------------------------------------------------------------
# error measures
# ----------------------------------------------------------------------------
def compare(sim, ref, T, n_judge=None):
    """(count error, mean |dt|, max |dt|) of ``sim`` against ``ref`` on [0, T];
    spikes are matched in order; with ``n_judge`` only the first n_judge spikes
    of each are judged (then the count error is of the whole window)."""
    sim = np.asarray(sim)
    sim = sim[sim <= T + 1e-9]
    ref = np.asarray(ref)
    dn = len(sim) - len(ref)
    m = min(len(sim), len(ref))
    if n_judge is not None:
        m = min(m, n_judge)
    if m == 0:
        return dn, float("nan"), float("nan")
    err = np.abs(sim[:m] - ref[:m])
    return dn, float(err.mean()), float(err.max())


def fmt_err(x):
    if x is None or not np.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    return f"{x:.1e}" if x < 0.01 else f"{x:.3f}" if x < 10 else f"{x:.1f}"


def table(header, rows, align=None):
    """Plain-text table (list of str rows)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    align = align or ["<"] + [">"] * (len(header) - 1)
    line = lambda cells: "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, align, widths))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def machine_line():
    import platform
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"# python {platform.python_version()}, jax {jax.__version__} ({jax.default_backend()}, "
            f"{len(jax.devices())} device(s)), {os.cpu_count()} CPU cores{load}; float32")
