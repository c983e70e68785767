"""Throughput (neuron-steps per second) of ngc_adex.AdExCell's integrators
against ngc-learn's built-in AdExCell, a bare JAX Euler loop and the
convenience runner ``ngc_adex.simulate.simulate``.

Setup: Brette-Gerstner (2005) parameters, dt = 0.1 ms, float32, one
population of N neurons with per-neuron constant currents uniform in
400..1600 pA (so neurons fire at different rates: silent below about 550 pA,
about 70 Hz at 1600 pA over 500 ms), batch_size 1.

* ``ngclearn:euler`` / ``ngclearn:rk2``: ngc-learn's own AdExCell, and
  ``ngc_adex:<integrator>``: run through ngc-learn's ``MethodProcess.scan``
  over ``pack_rows`` rows, nothing watched; the carried state is the cell's
  compartments only.
* ``ngc_adex:<integrator>+aeif_cond_exp`` (any receptor preset): the cell with NEST's
  receptors, every port fed a steady input (``_common.PORT_INPUT`` nS per step): the cost of
  receptors against the current-only cell.
* ``ngc_adex:euler+t_spike``: euler with ``precise_times=True`` (the
  interpolated spike time kept up to date), where the cell has that switch;
  plain ``ngc_adex:<integrator>`` uses the cell's default.
* ``simulate:euler`` / ``simulate:precise``: ``ngc_adex.simulate.simulate``
  with its defaults (spike times collected to the host chunk by chunk); each
  call is timed as a user sees it.
* ``bare_jax_euler``: the built-in cell's equations (forward Euler, reset
  with ``where``) in a hand-written ``jax.jit(jax.lax.scan)`` loop.

Ways of driving ngc_adex's cell (one row each per integrator, and a table per N
that puts them side by side):

* ``ngc_adex:<integrator>``: (a) ``MethodProcess.scan`` over ``pack_rows`` rows
  (t and dt traced, one row per step).
* ``jit_const:<integrator>``: (b) a user's own
  ``jax.jit(lambda s, ts: lax.scan(lambda st, t: advance.run.compiled(st, row(t, dt)), s, ts))``
  over the process's compiled function, with ``dt`` a Python float closed over
  (a compile-time constant; ``row`` is ``advance.pack_keywords(t=t, dt=dt)``).
* ``jit_traced:<integrator>``: (c) the same with ``dt`` a traced argument of the jit.
* ``pyloop:<integrator>``: (d) a Python loop of ``advance.run(t=..., dt=...)``,
  one dispatch per step; it runs ``--loop-steps`` steps per timed run (default 20).

All configurations are interleaved in one process (each repetition runs every
configuration once) and the best and median repetition are reported; the first
call of each is timed separately ("first call" - best run = compile/trace).
Peak memory is the peak resident set size (VmHWM of /proc/self/status, the
high-water mark ``getrusage`` maxrss would give without fork inheritance) of a
fresh subprocess that builds the configuration and runs it once (compile
included), and its increase over a subprocess that only imports and builds
the currents.

Usage::

    python benchmarks/throughput.py                # N = 1e3 .. 1e6
    python benchmarks/throughput.py --quick        # N = 1e3, 1e5; 3 repetitions
    python benchmarks/throughput.py --sizes 1e4 --steps 2000 --repeats 7
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import _common as C

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

DT = 0.1
ADEX_METHODS = ("euler", "midpoint", "rk4", "precise")
#: the ways of driving ngc_adex's cell: label prefix -> column title
DRIVERS = {"ngc_adex": "(a) MethodProcess.scan", "jit_const": "(b) jit+scan, dt constant",
           "jit_traced": "(c) jit+scan, dt traced", "pyloop": "(d) Python loop of run"}
CONFIGS = (["ngclearn:euler", "ngclearn:rk2"] + [f"ngc_adex:{m}" for m in ADEX_METHODS]
           + (["ngc_adex:euler+t_spike"] if C.supports_precise_times() else [])
           + ["simulate:euler", "simulate:precise", "bare_jax_euler"]
           + [f"{d}:{m}" for d in list(DRIVERS)[1:] for m in ADEX_METHODS])
BASE = "ngclearn:euler"


def bg_kwargs():
    p = C.ngc_adex.preset("brette_gerstner_2005")
    phys = {k: p[k] for k in ("C", "gL", "EL", "VT", "DT", "a", "tau_w", "b", "Vr", "V_peak")}
    return C.cell_kwargs(phys, v0=p["EL"], w0=0.)


def currents(n, seed=0):
    return np.random.default_rng(seed).uniform(400., 1600., (1, n)).astype(np.float32)


def count_eqns(jaxpr):
    """Primitive equations of a jaxpr, counting inside nested (pjit, custom_jvp) calls and
    one branch of each conditional (ngc_adex runs its flight in a two-way cond of twin branches)."""
    n = 0
    for eqn in jaxpr.eqns:
        subs = [v for v in eqn.params.values() if hasattr(v, "jaxpr") or hasattr(v, "eqns")]
        subs += list(eqn.params.get("branches", ()))[:1]
        if subs:
            for sub in subs:
                n += count_eqns(getattr(sub, "jaxpr", sub))
        else:
            n += 1
    return n


class ScanRunner:
    """A cell driven by ngc-learn's MethodProcess.scan."""

    def __init__(self, impl, method, n, steps, times=None, receptors=None):
        kwargs = dict(bg_kwargs(), **({"receptors": receptors} if receptors else {}))
        self.pop = C.Population(impl, method, kwargs, currents(n), watch=False, times=times)
        self.rows = self.pop.rows(steps, DT)

    def run(self):
        final, _ = self.pop.scan(self.rows)
        jax.block_until_ready(final)

    def jaxpr_size(self):
        """Equations in the jaxpr of one compiled advance (ngc-learn's process)."""
        run = self.pop.advance.run.compiled
        fn = getattr(run, "source_fn", run)
        return count_eqns(jax.make_jaxpr(fn)(self.pop.state0, self.rows[0]).jaxpr)

    def close(self):
        self.pop.close()


class SimulateRunner:
    """ngc_adex.simulate.simulate on a cell (continues from its last state)."""

    def __init__(self, method, n, steps):
        from ngc_adex.simulate import simulate
        self.simulate, self.duration = simulate, steps * DT
        self.name = f"simrun{next(C._counter)}"
        with C.Context(self.name):
            self.cell = C.ngc_adex.AdExCell("z", n_units=n, integration_type=method, **bg_kwargs())
        self.current = currents(n)

    def run(self):
        self.simulate(self.cell, self.duration, DT, current=self.current, progress=False)

    def jaxpr_size(self):
        return None

    def close(self):
        C.contextManager.remove_context(self.name)


class BareRunner:
    """The built-in cell's equations as a hand-written jitted lax.scan."""

    def __init__(self, n, steps):
        kw = bg_kwargs()
        tau_m, R, tau_w, D, vT = kw["tau_m"], kw["resist_m"], kw["tau_w"], kw["v_sharpness"], kw["intrinsic_mem_thr"]
        thr, v_rest, v_reset, a, b = kw["thr"], kw["v_rest"], kw["v_reset"], kw["a"], kw["b"]
        j = jnp.asarray(currents(n))

        def body(carry, t):
            v, w, tols = carry
            dv = (-(v - v_rest) + D * jnp.exp((v - vT) / D) - R * w + R * j) / tau_m
            dw = (-w + a * (v - v_rest)) / tau_w
            v1, w1 = v + DT * dv, w + DT * dw
            spike = v1 > thr
            return (jnp.where(spike, v_reset, v1), jnp.where(spike, w1 + b, w1), jnp.where(spike, t, tols)), None

        self.body = body
        self.fn = jax.jit(lambda c, ts: jax.lax.scan(body, c, ts)[0])
        z = jnp.zeros((1, n), jnp.float32)
        self.state = (z + kw["v0"], z, z)
        self.ts = (jnp.arange(steps, dtype=jnp.float32) + 1) * DT

    def run(self):
        jax.block_until_ready(self.fn(self.state, self.ts))

    def jaxpr_size(self):
        return count_eqns(jax.make_jaxpr(lambda c, t: self.body(c, t)[0])(self.state, self.ts[0]).jaxpr)

    def close(self):
        pass


class UserJitRunner:
    """A user's own ``jax.jit(lax.scan)`` over the process's compiled function
    (``advance.run.compiled(state, row)``), ``dt`` a Python float closed over
    (a compile-time constant) or a traced argument of the jit."""

    def __init__(self, method, n, steps, constant_dt):
        self.pop = C.Population(C.ADEX, method, bg_kwargs(), currents(n), watch=False)
        advance = self.pop.advance
        compiled = advance.run.compiled
        ts = (jnp.arange(steps, dtype=jnp.float32) + 1.) * DT

        def run(state, ts, dt):
            body = lambda s, t: (compiled(s, advance.pack_keywords(t=t, dt=dt))[0], None)
            return jax.lax.scan(body, state, ts)[0]

        if constant_dt:
            self.fn, self.args = jax.jit(lambda s, ts: run(s, ts, DT)), (self.pop.state0, ts)
        else:
            self.fn, self.args = jax.jit(run), (self.pop.state0, ts, jnp.float32(DT))

    def run(self):
        jax.block_until_ready(self.fn(*self.args))

    def jaxpr_size(self):
        return None

    def close(self):
        self.pop.close()


class PyLoopRunner:
    """A Python loop of ``advance.run(t=..., dt=...)``: one dispatch per step."""

    def __init__(self, method, n, steps):
        self.pop = C.Population(C.ADEX, method, bg_kwargs(), currents(n), watch=False)
        self.steps = steps

    def run(self):
        state = self.pop.state0
        for i in range(self.steps):
            state, _ = self.pop.advance.run(state=state, update=False, t=(i + 1) * DT, dt=DT)
        jax.block_until_ready(state)

    def jaxpr_size(self):
        return None

    def close(self):
        self.pop.close()


def make_runner(label, n, steps, loop_steps=20):
    kind, _, method = label.partition(":")
    method, _, extra = method.partition("+")
    if kind in (C.ADEX, C.BUILTIN):
        return ScanRunner(kind, method, n, steps, times=True if extra == "t_spike" else None,
                          receptors=extra if extra.startswith("aeif_") else None)
    if kind in ("jit_const", "jit_traced"):
        return UserJitRunner(method, n, steps, constant_dt=kind == "jit_const")
    if kind == "pyloop":
        return PyLoopRunner(method, n, min(steps, loop_steps))
    if kind == "simulate":
        return SimulateRunner(method, n, steps)
    if label == "bare_jax_euler":
        return BareRunner(n, steps)
    raise ValueError(label)


def steps_for(n, args):
    return int(min(args.steps, max(args.min_steps, args.max_neuron_steps // n)))


# ----------------------------------------------------------------------------
# memory: one fresh subprocess per configuration
# ----------------------------------------------------------------------------
def peak_rss_mb():
    """Peak resident set size of this process (MB): VmHWM from /proc (per
    address space, reset by exec), else getrusage's maxrss (which Linux carries
    over from the parent across fork+exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.


def child(label, n, steps, loop_steps):
    if label != "none":
        make_runner(label, n, steps, loop_steps).run()
    else:
        currents(n)
    print(json.dumps({"maxrss_mb": peak_rss_mb()}))


def measure_memory(labels, n, steps, loop_steps):
    out = {}
    for label in ["none"] + list(labels):
        cmd = [sys.executable, os.path.abspath(__file__), "--_child", label, str(n), str(steps), str(loop_steps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT)
        try:
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])["maxrss_mb"]
        except (IndexError, ValueError, KeyError):
            out[label] = float("nan")
            sys.stderr.write(f"memory child {label} N={n} failed:\n{proc.stderr[-2000:]}\n")
    return out


# ----------------------------------------------------------------------------
def fmt_rate(x):
    return f"{x:.3g}" if np.isfinite(x) else "-"


def driver_table(labels, rates, base_rate):
    """Integrators as rows, the ways of driving the cell (:data:`DRIVERS`) as columns; None if only one."""
    drivers = [d for d in DRIVERS if any(l == f"{d}:{m}" for l in labels for m in ADEX_METHODS)]
    methods = [m for m in ADEX_METHODS if any(f"{d}:{m}" in labels for d in drivers)]
    if len(drivers) < 2:
        return None
    rows = [[m] + [f"{fmt_rate(rates[f'{d}:{m}'])} ({rates[f'{d}:{m}'] / base_rate:.3f})"
                   if f"{d}:{m}" in rates else "-" for d in drivers] for m in methods]
    if "jit_const" in drivers and "jit_traced" in drivers:
        for row, m in zip(rows, methods):
            a, b = rates.get(f"jit_const:{m}"), rates.get(f"jit_traced:{m}")
            row.append(f"{a / b:.3f}" if a and b else "-")
        return C.table(["integrator"] + [DRIVERS[d] for d in drivers] + ["(b)/(c)"], rows)
    return C.table(["integrator"] + [DRIVERS[d] for d in drivers], rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 1e3, 1e5; 3 repetitions; memory at 1e5 only")
    ap.add_argument("--sizes", type=str, default=None, help="comma-separated N (default 1e3,1e4,1e5,1e6)")
    ap.add_argument("--steps", type=int, default=10000, help="steps per timed run (default 10000) ...")
    ap.add_argument("--max-neuron-steps", type=float, default=1e8,
                    help="... reduced to max(--min-steps, this / N) for large N (default 1e8: 1000 steps "
                         "at N = 1e5, 100 at 1e6)")
    ap.add_argument("--min-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    ap.add_argument("--loop-steps", type=int, default=20,
                    help="steps per timed run of the pyloop:* configurations (default 20)")
    ap.add_argument("--configs", type=str, default=None, help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--mem-sizes", type=str, default=None,
                    help="N at which to measure peak memory (default 1e5,1e6; quick 1e5; 'none')")
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        return child(args._child[0], int(float(args._child[1])), int(args._child[2]), int(args._child[3]))
    if args.quick:
        args.repeats = min(args.repeats, 3)
    sizes = [int(float(x)) for x in (args.sizes or ("1e3,1e5" if args.quick else "1e3,1e4,1e5,1e6")).split(",")]
    mem_arg = args.mem_sizes or ("1e5" if args.quick else "1e5,1e6")
    mem_sizes = [] if mem_arg == "none" else [int(float(x)) for x in mem_arg.split(",")]
    labels = args.configs.split(",") if args.configs else list(CONFIGS)

    print(C.machine_line())
    print(f"# Brette-Gerstner 2005, dt = {DT} ms, currents U(400, 1600) pA, {args.repeats} interleaved repetitions; "
          f"steps per run = min({args.steps}, max({args.min_steps}, {args.max_neuron_steps:.0e}/N))")
    t_start = time.perf_counter()
    results, jaxpr = {}, {}
    for n in sizes:
        steps = steps_for(n, args)
        runners, first = {}, {}
        for label in labels:
            runners[label] = make_runner(label, n, steps, args.loop_steps)
            t0 = time.perf_counter()
            runners[label].run()
            first[label] = time.perf_counter() - t0
            if label not in jaxpr:
                jaxpr[label] = runners[label].jaxpr_size()
        times = {label: [] for label in labels}
        for _ in range(args.repeats):
            for label in labels:
                t0 = time.perf_counter()
                runners[label].run()
                times[label].append(time.perf_counter() - t0)
        run_steps = {label: getattr(runners[label], "steps", steps) for label in labels}
        for label in labels:
            runners[label].close()
        mem = measure_memory(labels, n, steps, args.loop_steps) if n in mem_sizes else None
        rates = {label: n * run_steps[label] / min(times[label]) for label in labels}
        results[n] = dict(steps=steps, first=first, times=times, mem=mem, rates=rates)

        rows = []
        base_best = rates.get(BASE, float("nan"))
        for label in labels:
            best, med = min(times[label]), float(np.median(times[label]))
            rate_best, rate_med = rates[label], n * run_steps[label] / med
            row = [label, fmt_rate(rate_best), fmt_rate(rate_med), f"{rate_best / base_best:.3f}",
                   f"{1e9 / rate_best:.2f}", f"{first[label]:.2f}", f"{max(first[label] - best, 0.):.2f}"]
            if mem is not None:
                row += [f"{mem[label]:.0f}", f"{mem[label] - mem['none']:+.0f}"]
            rows.append(row)
        header = ["config", "best n-steps/s", "median", f"ratio vs {BASE}", "ns/neuron-step", "first call s",
                  "compile s"]
        if mem is not None:
            header += ["peak RSS MB", f"vs import-only ({mem['none']:.0f})"]
        print(f"\nN = {n:g}, {steps} steps per run" + (f" ({min(steps, args.loop_steps)} for pyloop:*)"
                                                         if any(l.startswith("pyloop:") for l in labels) else ""))
        print(C.table(header, rows))
        drive = driver_table(labels, rates, base_best)
        if drive:
            print(f"\nN = {n:g}, ways of driving ngc_adex's cell: best neuron-steps/s (ratio vs {BASE} "
                  "driven by MethodProcess.scan)")
            print(drive)
        sys.stdout.flush()

    print("\nprimitive equations per step (make_jaxpr of the compiled advance, nested calls expanded; "
          "not for simulate):")
    print("  " + ", ".join(f"{k} {v}" for k, v in jaxpr.items() if v is not None))
    print("\nSummary: best throughput ratio vs ngclearn:euler (targets: ngc_adex:euler >= 1.0 at every N, "
          "ngc_adex:rk4 >= 0.3, ngc_adex:precise >= 0.3 at N=1e5)")
    rows = []
    for label in labels:
        row = [label]
        for n in sizes:
            r = results[n]
            row.append(f"{r['rates'][label] / r['rates'][BASE]:.3f}" if BASE in r["rates"] else "-")
        rows.append(row)
    print(C.table(["config"] + [f"N={n:g}" for n in sizes], rows))
    print(f"\n# total {time.perf_counter() - t_start:.0f} s")
    return results


if __name__ == "__main__":
    main()
