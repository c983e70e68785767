"""Spike-time accuracy of ngc_adex.AdExCell's integrators and of ngc-learn's
built-in AdExCell against a high-accuracy reference (ngc_adex/reference.py).

Test problems (one population, one neuron each, float32, constant current from
t = 0, V0 = E_L, w0 = 0 unless stated):

* the eight Naud et al. (2008) patterns, 500 ms (``irregular`` is chaotic:
  only its first 5 spikes are judged, its count is shown but not summed);
* NEST's aeif test problem (V0 = -70 mV, w0 = 5 pA, 100 ms) against NEST's
  converged spike times (anchors.md);
* a Brette-Gerstner (2005) population, currents 400..1600 pA, 500 ms.

ngc_adex is judged on its interpolated spike time ``t_spike`` (with
``precise_times=True`` where the cell has that switch), the built-in cell on ``tols`` (the grid time of the step that spiked). Spikes are matched
in order. All runs go through ngc-learn's ``MethodProcess.scan``.

Usage::

    python benchmarks/accuracy.py            # dt = 0.1, 0.05, 0.01 ms
    python benchmarks/accuracy.py --quick    # dt = 0.1 ms, 5 Brette-Gerstner neurons
"""
import argparse
import time

import numpy as np

import _common as C

ADEX_METHODS = ("euler", "midpoint", "rk4", "precise")
BUILTIN_METHODS = ("euler", "rk2")


def evaluate(impl, method, dt, problems):
    """Simulates all problems in one population; returns a dict of results."""
    T = max(pr.T for pr in problems)
    phys = C.physical_arrays(problems)
    kwargs = C.cell_kwargs(phys, v0=np.array([[pr.v0 for pr in problems]]),
                           w0=np.array([[pr.w0 for pr in problems]]))
    currents = np.array([[pr.current for pr in problems]])
    pop = C.Population(impl, method, kwargs, currents, times=True)  # ngc_adex judged on t_spike
    n_steps = int(round(T / dt))
    rows = pop.rows(n_steps, dt)
    t0 = time.perf_counter()
    final, watched = pop.scan(rows)
    trains = C.spike_trains(impl, watched)
    wall = time.perf_counter() - t0
    nan = int(np.sum(~np.isfinite(pop.final_v(final))))
    pop.close()
    per = {}
    for pr, train in zip(problems, trains):
        per[pr.name] = C.compare(train, pr.ref, pr.T, pr.n_judge)
    return dict(impl=impl, method=method, dt=dt, per=per, nan=nan, wall=wall, trains=trains)


def summarize(res, problems):
    """Aggregates of one configuration (the medians/max/count errors)."""
    per = res["per"]
    naud7 = [pr.name for pr in problems if pr.group == "naud" and pr.name not in C.CHAOTIC]
    bg = [pr.name for pr in problems if pr.group == "bg"]

    def agg(names):
        means = [per[n][1] for n in names]
        maxes = [per[n][2] for n in names]
        finite = [m for m in means if np.isfinite(m)]
        return dict(median=float(np.median(finite)) if finite else float("nan"),
                    max=float(np.nanmax(maxes)) if np.any(np.isfinite(maxes)) else float("nan"),
                    count=int(sum(abs(per[n][0]) for n in names)),
                    n_bad=int(sum(per[n][0] != 0 for n in names)),
                    missing=int(sum(not np.isfinite(m) for m in means)))
    out = dict(naud=agg(naud7), bg=agg(bg))
    if "nest_aeif" in per:
        out["nest"] = per["nest_aeif"]
    if "irregular" in per:
        out["irregular"] = per["irregular"]
    return out


def label(res):
    return f"{res['impl']}:{res['method']}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="dt = 0.1 ms only, 5 Brette-Gerstner neurons")
    ap.add_argument("--dts", type=str, default=None, help="comma-separated steps in ms (default 0.1,0.05,0.01)")
    ap.add_argument("--bg", type=int, default=None, help="Brette-Gerstner neurons (default 13; quick 5)")
    args = ap.parse_args(argv)
    dts = [float(x) for x in args.dts.split(",")] if args.dts else ([0.1] if args.quick else [0.1, 0.05, 0.01])
    n_bg = args.bg or (5 if args.quick else 13)
    problems = C.all_problems(tuple(np.linspace(400., 1600., n_bg)))
    print(C.machine_line())
    C.attach_references(problems)
    t_start = time.perf_counter()
    configs = [(C.ADEX, m) for m in ADEX_METHODS] + [(C.BUILTIN, m) for m in BUILTIN_METHODS]
    results = []
    for dt in dts:
        for impl, method in configs:
            results.append(evaluate(impl, method, dt, problems))

    # per-pattern table -------------------------------------------------------
    names = [pr.name for pr in problems if pr.group != "bg"]
    short = {"tonic": "tonic", "adapting": "adapt", "initial_burst": "init_burst",
             "regular_bursting": "reg_burst", "delayed_accelerating": "del_accel",
             "delayed_regular_bursting": "del_reg_burst", "transient": "transient",
             "irregular": "irregular*", "nest_aeif": "NEST"}
    print("\nPer pattern: mean |spike-time error| in ms [spike-count error sim - ref] "
          "(* irregular: first 5 spikes; '-' no spike to match)")
    ref_counts = "  ".join(f"{short[n]}={len(pr.ref)}" for n, pr in ((p.name, p) for p in problems)
                           if n in short)
    print(f"reference spike counts: {ref_counts}")
    rows = []
    for r in results:
        cells = []
        for n in names:
            dn, mean, _ = r["per"][n]
            cells.append(f"{C.fmt_err(mean)}" + (f" [{dn:+d}]" if dn else ""))
        rows.append([label(r), f"{r['dt']:g}"] + cells)
    print(C.table(["cell:integrator", "dt"] + [short[n] for n in names], rows))

    # summary -----------------------------------------------------------------
    print(f"\nSummary. naud7 = the 7 non-chaotic Naud patterns: median over patterns of the mean "
          f"|error|, max single-spike |error|, sum |count error| (patterns with a count error); "
          f"BG = Brette-Gerstner population ({n_bg} neurons, {problems[-n_bg].current:.0f}.."
          f"{problems[-1].current:.0f} pA, {sum(len(p.ref) for p in problems if p.group == 'bg')} ref spikes), "
          f"same measures over neurons; NaN = neurons whose v is NaN at the end; wall = first scan call (compile included) + readback (s).")
    rows = []
    for r in results:
        s = summarize(r, problems)
        nd, bg, ne, ir = s["naud"], s["bg"], s["nest"], s["irregular"]
        rows.append([label(r), f"{r['dt']:g}", C.fmt_err(nd["median"]), C.fmt_err(nd["max"]),
                     f"{nd['count']} ({nd['n_bad']})", C.fmt_err(ir[1]), f"{ir[0]:+d}",
                     C.fmt_err(ne[1]), C.fmt_err(ne[2]), f"{ne[0]:+d}",
                     C.fmt_err(bg["median"]), C.fmt_err(bg["max"]), f"{bg['count']} ({bg['n_bad']})",
                     str(r["nan"]), f"{r['wall']:.1f}"])
    print(C.table(["cell:integrator", "dt", "naud7 med", "naud7 max", "naud7 dN", "irr5 mean", "irr dN",
                   "NEST mean", "NEST max", "NEST dN", "BG med", "BG max", "BG dN", "NaN", "wall"], rows))
    print(f"\n# total {time.perf_counter() - t_start:.0f} s")
    return results


if __name__ == "__main__":
    main()
