"""The RS-FS conductance-based AdEx network (ngc_adex/data/rsfs_network.json, after di Volo et al.
2019): 8000 RS + 2000 FS AdEx neurons, pairwise Bernoulli p = 0.05 without autapses,
exponential conductances (tau 5 ms, E 0 / -80 mV), external drive of 8000 Poisson sources at
2.5 Hz (p = 0.05, weight Qe), refractory 5 ms, dt = 0.1 ms.

ngc_adex: ``ngc_adex.networks.build_rsfs``: two AdExCells (receptor ports exc/inh), four SparseProjections (delay 0: each reads the
spikes of the previous step, as a synapse in Brian2 acting in the next step), two PoissonDrives
(per target K_i ~ Binomial(8000, 0.05) sources), one ``MethodProcess``; the run is a
``jax.jit(lax.scan)`` over the process's compiled step that also accumulates the spike
statistics (counts and ISIs after the transient) on the device. NEST (``aeif_cond_exp``,
2 threads, a poisson_generator of 400 x 2.5 Hz per target) runs in the interpreter that has it
(this one or /work/venv-nest/bin/python). Brian2 (2.9 needs numpy < 2.4) runs in
--brian2-python (default /work/venv-brian2/bin/python if it exists, else this one): the same network
as in the di Volo / Goldman scripts (NeuronGroups with v ``(unless refractory)``, ``heun``,
Synapses without delay, the drive a PoissonGroup(8000, 2.5 Hz) + Synapses with p = 0.05),
``prefs.codegen.target`` from --brian2-target (cython); a 10 ms warm-up run (then ``restore()``)
generates and compiles the code, so run_s is the wall time of ``net.run(T)`` (loop_s: Brian2's own
time of the main loop, without the code objects' preparation).

Prints one JSON line per simulator with --json: rate_rs, rate_fs (Hz: spikes after the
transient / neurons / time), cv_rs (mean CV of the ISIs of RS neurons with >= 3 ISIs after
the transient), run_s (wall time after compilation), build_s, compile_s, integrator,
n_neurons, steps, ms_per_step, spikes_per_step, peak_rss_mb (the peak resident memory of the
process that ran it: ngc_adex runs in this one, so list it first); without --json, a table of
the simulators side by side.

Run:  python benchmarks/network.py --model rsfs --T 1000 --json [--integrator heun] [--n-scale 1]
      [--sims ngc_adex,nest,brian2] [--brian2-python PATH] [--brian2-target cython|numpy]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NEST_PYTHON = "/work/venv-nest/bin/python"
BRIAN2_PYTHON = "/work/venv-brian2/bin/python"


def _load_model(path):
    """The network's parameters: from ``path`` if given, else the package's copy."""
    if path:
        with open(path) as f:
            return json.load(f)
    sys.path.insert(0, ROOT)
    from ngc_adex.networks import rsfs_parameters
    return rsfs_parameters()


def _peak_rss_mb():
    """Peak resident memory of this process (MiB): VmHWM."""
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024.


TABLE = ("sim", "integrator", "n_neurons", "rate_rs", "rate_fs", "cv_rs", "run_s", "build_s", "peak_rss_mb")


def print_table(results):
    """The simulators side by side, one row each."""
    print(" | ".join(f"{c:>12s}" for c in TABLE))
    for r in results:
        cells = [r.get(c, r.get("skipped", r.get("error", "")) if c == "integrator" else "") for c in TABLE]
        print(" | ".join(f"{v:12.4g}" if isinstance(v, float) else f"{str(v)[:40]:>12s}" for v in cells))


def _sizes(model, n_scale):
    pops = model["populations"]
    return int(pops["RS"]["N"] * n_scale), int(pops["FS"]["N"] * n_scale), int(model["external_drive"]["N_ext"])


def run_ngc_adex(model, T, integrator, n_scale, seed=0):
    sys.path.insert(0, ROOT)
    import numpy as np
    import jax
    import jax.numpy as jnp
    from ngcsimlib.global_state import stateManager
    import ngc_adex
    import ngc_adex.networks

    t0 = time.perf_counter()
    dt = model["simulation"]["dt"]
    transient = model["simulation"]["transient_ms"]
    n_rs, n_fs, _ = _sizes(model, n_scale)
    net = ngc_adex.networks.build_rsfs(n_scale, integrator, seed, params=model,
                                       name=f"rsfs_{seed}_{integrator}_{n_scale}")
    advance, reset, rs, fs, proj = net.advance, net.reset, net.rs, net.fs, net.projections
    reset.run()
    steps = int(round(T / dt))
    rows = jnp.asarray(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt))
    ts = (jnp.arange(steps) + 1) * dt
    state = {k: jnp.asarray(v) for k, v in stateManager.state.items()}
    f = advance.run.compiled
    build_s = time.perf_counter() - t0

    def stats0(n):
        z = jnp.zeros(n)
        return dict(count=z, last=jnp.full(n, -1.), n_isi=z, s1=z, s2=z)

    def update(st, s, t):
        s = s[0] > 0
        after = s & (t > transient)
        isi = t - st["last"]
        ok = after & (st["last"] > transient)
        return dict(count=st["count"] + after, last=jnp.where(after, t, st["last"]), n_isi=st["n_isi"] + ok,
                    s1=st["s1"] + jnp.where(ok, isi, 0.), s2=st["s2"] + jnp.where(ok, isi * isi, 0.))

    def body(carry, xs):
        st, a, b = carry
        row, t = xs
        st, _ = f(st, row)
        return (st, update(a, st[rs.s.target], t), update(b, st[fs.s.target], t)), None

    run = jax.jit(lambda st: jax.lax.scan(body, (st, stats0(n_rs), stats0(n_fs)), (rows, ts))[0][1:])
    t1 = time.perf_counter()
    compiled = run.lower(state).compile()
    compile_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    a, b = jax.block_until_ready(compiled(state))
    run_s = time.perf_counter() - t2
    a, b = ({k: np.asarray(v, np.float64) for k, v in x.items()} for x in (a, b))
    span = (T - transient) / 1000.
    has = a["n_isi"] >= 3
    mean = a["s1"][has] / a["n_isi"][has]
    var = np.maximum(a["s2"][has] / a["n_isi"][has] - mean ** 2, 0.) * a["n_isi"][has] / (a["n_isi"][has] - 1)
    total = a["count"].sum() + b["count"].sum()
    return {"sim": "ngc_adex", "rate_rs": float(a["count"].sum() / n_rs / span),
            "rate_fs": float(b["count"].sum() / n_fs / span), "cv_rs": float(np.mean(np.sqrt(var) / mean)),
            "run_s": run_s, "build_s": build_s, "compile_s": compile_s, "integrator": integrator,
            "n_neurons": n_rs + n_fs, "steps": steps, "ms_per_step": run_s / steps * 1e3,
            "spikes_per_step": float(total / ((T - transient) / dt)),
            "connections": int(sum(pj.n_connections for pj in proj.values())), "peak_rss_mb": _peak_rss_mb()}


NEST_SCRIPT = r"""
import json, sys, time
PEAK_RSS_MB = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024.
import numpy as np
import nest
model, T, n_scale, threads = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
dt = model["simulation"]["dt"]; transient = model["simulation"]["transient_ms"]
nest.SetKernelStatus({"resolution": dt, "local_num_threads": threads, "rng_seed": 1})
syn, pops, ext = model["synapses"], model["populations"], model["external_drive"]
def params(q):
    return {"C_m": q["C"], "g_L": q["gL"], "E_L": q["EL"], "V_th": q["VT"], "Delta_T": q["DT"], "a": q["a"],
            "b": q["b"], "tau_w": q["tau_w"], "V_reset": q["Vr"], "V_peak": q["Vpeak"], "t_ref": q["t_ref"],
            "E_ex": syn["E_e"], "E_in": syn["E_i"], "tau_syn_ex": syn["tau_syn_e"], "tau_syn_in": syn["tau_syn_i"],
            "V_m": -65., "w": 0.}
n_rs, n_fs = int(pops["RS"]["N"] * n_scale), int(pops["FS"]["N"] * n_scale)
p = model["connectivity"]["p"] / n_scale
rs = nest.Create("aeif_cond_exp", n_rs, params=params(pops["RS"]))
fs = nest.Create("aeif_cond_exp", n_fs, params=params(pops["FS"]))
for src, tgt, w in ((rs, rs, syn["Qe"]), (rs, fs, syn["Qe"]), (fs, rs, -syn["Qi"]), (fs, fs, -syn["Qi"])):
    nest.Connect(src, tgt, {"rule": "pairwise_bernoulli", "p": p, "allow_autapses": False},
                 {"weight": w, "delay": dt})
pg = nest.Create("poisson_generator", params={"rate": ext["N_ext"] * ext["p"] * ext["rate_hz"]})
nest.Connect(pg, rs + fs, syn_spec={"weight": syn["Qe"], "delay": dt})
rec = nest.Create("spike_recorder")
nest.Connect(rs + fs, rec)
build_s = time.perf_counter() - t0
t1 = time.perf_counter()
nest.Simulate(T)
run_s = time.perf_counter() - t1
ev = rec.get("events")
sender, times = np.asarray(ev["senders"]), np.asarray(ev["times"])
keep = times > transient
sender, times = sender[keep], times[keep]
span = (T - transient) / 1000.
is_rs = sender <= max(rs.tolist())
cvs = []
order = np.lexsort((times, sender))
sender, times, is_rs = sender[order], times[order], is_rs[order]
for nid in np.unique(sender[is_rs]):
    tt = times[sender == nid]
    if tt.size >= 4:
        isi = np.diff(tt)
        cvs.append(isi.std(ddof=1) / isi.mean())
print(json.dumps({"sim": "nest", "rate_rs": float(is_rs.sum() / n_rs / span),
                  "rate_fs": float((~is_rs).sum() / n_fs / span), "cv_rs": float(np.mean(cvs)) if cvs else None,
                  "run_s": run_s, "build_s": build_s, "integrator": "aeif_cond_exp (rkf45, adaptive)",
                  "n_neurons": n_rs + n_fs, "steps": int(round(T / dt)), "ms_per_step": run_s / (T / dt) * 1e3,
                  "threads": threads, "peak_rss_mb": PEAK_RSS_MB()}))
"""


BRIAN2_SCRIPT = r"""
import json, sys, time
PEAK_RSS_MB = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024.
import numpy as np
model, T, n_scale, target, warmup = (json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4],
                                     float(sys.argv[5]))
t0 = time.perf_counter()
import brian2
from brian2 import (NeuronGroup, PoissonGroup, Synapses, SpikeMonitor, Network, defaultclock, prefs, seed,
                    ms, mV, pF, nS, pA, Hz, device)
prefs.codegen.target = target
dt = model["simulation"]["dt"]; transient = model["simulation"]["transient_ms"]
defaultclock.dt = dt * ms
seed(1)
syn, pops, ext = model["synapses"], model["populations"], model["external_drive"]
n_rs, n_fs = int(pops["RS"]["N"] * n_scale), int(pops["FS"]["N"] * n_scale)
p = model["connectivity"]["p"] / n_scale
eqs = "\n".join([
    "dv/dt = (-gE*(v-Ee) - gI*(v-Ei) - gL*(v-EL) + gL*DT*exp((v-VT)/DT) - w)/C : volt (unless refractory)",
    "dw/dt = (a*(v-EL) - w)/tau_w : amp",
    "dgE/dt = -gE/tau_e : siemens",
    "dgI/dt = -gI/tau_i : siemens",
    "C : farad (constant)", "gL : siemens (constant)", "EL : volt (constant)", "VT : volt (constant)",
    "DT : volt (constant)", "a : siemens (constant)", "b : amp (constant)", "tau_w : second (constant)",
    "Vpeak : volt (constant)", "Vr : volt (constant)"])
ns = {"Ee": syn["E_e"] * mV, "Ei": syn["E_i"] * mV, "tau_e": syn["tau_syn_e"] * ms, "tau_i": syn["tau_syn_i"] * ms}
def group(n, q, name):
    g = NeuronGroup(n, eqs, threshold="v > Vpeak", reset="v = Vr; w += b", refractory=q["t_ref"] * ms,
                    method="heun", namespace=ns, name=name)
    g.C, g.gL, g.EL, g.VT, g.DT = q["C"] * pF, q["gL"] * nS, q["EL"] * mV, q["VT"] * mV, q["DT"] * mV
    g.a, g.b, g.tau_w, g.Vpeak, g.Vr = q["a"] * nS, q["b"] * pA, q["tau_w"] * ms, q["Vpeak"] * mV, q["Vr"] * mV
    g.v, g.w, g.gE, g.gI = -65. * mV, 0. * pA, 0. * nS, 0. * nS
    return g
rs, fs = group(n_rs, pops["RS"], "RS"), group(n_fs, pops["FS"], "FS")
objs = [rs, fs]
q_ns = {"Qe": syn["Qe"] * nS, "Qi": syn["Qi"] * nS}
for src, tgt, pre in ((rs, rs, "gE_post += Qe"), (rs, fs, "gE_post += Qe"),
                      (fs, rs, "gI_post += Qi"), (fs, fs, "gI_post += Qi")):
    S = Synapses(src, tgt, on_pre=pre, namespace=q_ns)  # no delay: acts in the next step
    if src is tgt:
        S.connect(condition="i != j", p=p)
    else:
        S.connect(p=p)
    objs.append(S)
# external drive as in the published di Volo / Goldman scripts: PoissonGroup + Synapses with p
P_ed = PoissonGroup(int(ext["N_ext"]), rates=ext["rate_hz"] * Hz)
objs.append(P_ed)
for tgt in (rs, fs):
    S = Synapses(P_ed, tgt, on_pre="gE_post += Qe", namespace=q_ns)
    S.connect(p=ext["p"])
    objs.append(S)
m_rs, m_fs = SpikeMonitor(rs), SpikeMonitor(fs)
net = Network(*objs, m_rs, m_fs)
connections = int(sum(len(o) for o in objs[2:6]))
net.store()
t1 = time.perf_counter()
if warmup > 0:
    net.run(warmup * ms)  # generates and compiles the code (cython: cached on disk)
warmup_s = time.perf_counter() - t1
net.restore()  # back to t = 0, initial state, empty monitors
build_s = time.perf_counter() - t0
t2 = time.perf_counter()
net.run(T * ms)
run_s = time.perf_counter() - t2
loop_s = float(device._last_run_time)
span = (T - transient) / 1000.
def after(mon):
    i, t = np.asarray(mon.i), np.asarray(mon.t / ms)
    keep = t > transient
    return i[keep], t[keep]
i_rs, t_rs = after(m_rs)
i_fs, t_fs = after(m_fs)
order = np.lexsort((t_rs, i_rs))
i_rs, t_rs = i_rs[order], t_rs[order]
starts = np.searchsorted(i_rs, np.arange(n_rs + 1))
cvs = []
for k in range(n_rs):
    tt = t_rs[starts[k]:starts[k + 1]]
    if tt.size >= 4:  # >= 3 ISIs
        isi = np.diff(tt)
        cvs.append(isi.std(ddof=1) / isi.mean())
print(json.dumps({"sim": "brian2", "rate_rs": float(i_rs.size / n_rs / span),
                  "rate_fs": float(i_fs.size / n_fs / span), "cv_rs": float(np.mean(cvs)) if cvs else None,
                  "run_s": run_s, "build_s": build_s, "warmup_s": warmup_s, "loop_s": loop_s,
                  "integrator": "heun", "target": target, "n_neurons": n_rs + n_fs, "steps": int(round(T / dt)),
                  "ms_per_step": run_s / (T / dt) * 1e3,
                  "spikes_per_step": float((i_rs.size + i_fs.size) / ((T - transient) / dt)),
                  "connections": connections, "drive": "PoissonGroup(N_ext) + Synapses(p)",
                  "version": brian2.__version__, "peak_rss_mb": PEAK_RSS_MB()}))
"""


def _has_module(python, module):
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_nest(model, T, n_scale, threads=2):
    python = sys.executable if _has_module(sys.executable, "nest") else NEST_PYTHON
    if not (os.path.exists(python) or shutil.which(python)) or not _has_module(python, "nest"):
        return {"sim": "nest", "skipped": "nest-simulator not installed"}
    proc = subprocess.run([python, "-c", NEST_SCRIPT, json.dumps(model), str(T), str(n_scale), str(threads)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"sim": "nest", "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_brian2(model, T, n_scale, python=None, target="cython", warmup=10.):
    if python is None:
        python = BRIAN2_PYTHON if os.path.exists(BRIAN2_PYTHON) else sys.executable
    if not (os.path.exists(python) or shutil.which(python)) or not _has_module(python, "brian2"):
        return {"sim": "brian2", "skipped": f"brian2 not importable by {python}"}
    proc = subprocess.run([python, "-c", BRIAN2_SCRIPT, json.dumps(model), str(T), str(n_scale), target,
                           str(warmup)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"sim": "brian2", "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rsfs", choices=["rsfs"])
    ap.add_argument("--data", default=None, help="path of a rsfs_network.json (default: ngc_adex/data/rsfs_network.json)")
    ap.add_argument("--T", type=float, default=1000., help="simulated time (ms)")
    ap.add_argument("--integrator", default="heun",
                    help="AdExCell integration_type (default heun: second order like the published Brian2 scripts, "
                         "conductances inside the step, ~5%% of the step's cost over euler)")
    ap.add_argument("--n-scale", type=float, default=1., help="population sizes x K at fixed in-degree")
    ap.add_argument("--sims", default="ngc_adex", help="comma-separated: ngc_adex, nest, brian2")
    ap.add_argument("--json", action="store_true", help="one JSON line per simulator")
    ap.add_argument("--brian2-python", default=None,
                    help=f"interpreter with brian2 (default: {BRIAN2_PYTHON} if it exists, else this one)")
    ap.add_argument("--brian2-target", default="cython", choices=["cython", "numpy"],
                    help="prefs.codegen.target for Brian2")
    args = ap.parse_args()
    model = _load_model(args.data)
    results = []
    for sim in args.sims.split(","):
        if sim == "ngc_adex":
            res = run_ngc_adex(model, args.T, args.integrator, args.n_scale)
        elif sim == "nest":
            res = run_nest(model, args.T, args.n_scale)
        elif sim == "brian2":
            res = run_brian2(model, args.T, args.n_scale, args.brian2_python, args.brian2_target)
        else:
            raise SystemExit(f"unknown simulator {sim!r}")
        results.append(res)
        if args.json:
            print(json.dumps(res), flush=True)
    if not args.json:
        print_table(results)


if __name__ == "__main__":
    main()
