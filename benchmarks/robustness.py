"""Robustness sweep: how often do AdEx cells produce NaN/inf?

Sweeps input current (0-5000, one neuron per current) x v_sharpness
{0.5, 1, 2, 5} mV (per-neuron parameters, so one population holds the whole
current x sharpness grid) x dt {0.01, 0.05, 0.1, 0.5, 1.0} ms x integrator,
for two parameter sets:

* ``BG2005``: Brette & Gerstner (2005) in physical units (j in pA), via
  ``ngc_adex.preset_kwargs("brette_gerstner_2005")``;
* ``ngc-learn defaults``: the default constructor values of ngc-learn's
  ``AdExCell`` (resist_m = 1), with j taking the same numbers.

Every integrator of ``ngc_adex.AdExCell`` runs next to ngc-learn's built-in
``AdExCell`` ("euler" and "rk2"). Each configuration is simulated for
``--duration`` ms (Default: 1000) through the component's compiled
``advance_state`` (ngc-learn ``MethodProcess``) under ``jax.lax.scan``, in
chunks of fixed length so that each cell is compiled once. Reported per
configuration: the number of neurons whose v or w was NaN/inf at any step
(out of the population), and for ngc_adex also the number of steps x neurons
with v above the spike potential (must be 0 as well).

Run:  python benchmarks/robustness.py [--duration 1000] [--n-currents 501]
"""
import argparse
import itertools
import time

import numpy as np
import jax
import jax.numpy as jnp
from ngclearn import Context, MethodProcess
from ngclearn.components import AdExCell as BuiltinAdExCell
from ngcsimlib.context import contextManager
from ngcsimlib.global_state import stateManager

from ngc_adex import AdExCell, METHODS, preset_kwargs

DTS = (0.01, 0.05, 0.1, 0.5, 1.0)
SHARPNESS = (0.5, 1., 2., 5.)
BUILTIN_METHODS = ("euler", "rk2")
_names = itertools.count()

NGCLEARN_DEFAULTS = dict(tau_m=15., resist_m=1., tau_w=400., v_sharpness=2., intrinsic_mem_thr=-55., thr=5.,
                         v_rest=-72., v_reset=-75., a=0.1, b=0.75, v0=-70., w0=0.)


def parameter_sets():
    bg = preset_kwargs("brette_gerstner_2005")
    bg.pop("refract_time")
    return {"BG2005 (pA)": bg, "ngc-learn defaults": dict(NGCLEARN_DEFAULTS)}


def _population(n_currents, i_max):
    """Per-neuron currents and v_sharpness: the grid current x sharpness, shape (1, n)."""
    currents = np.linspace(0., i_max, n_currents)
    cur, sharp = np.meshgrid(currents, np.asarray(SHARPNESS), indexing="xy")
    return cur.reshape(1, -1), sharp.reshape(1, -1)


def _build(kind, method, kwargs, sharp):
    name = f"robustness_{next(_names)}"
    n = sharp.shape[1]
    with Context(name):
        if kind == "ngc_adex":
            cell = AdExCell("z", n_units=n, integration_type=method, key=jax.random.PRNGKey(0),
                            **{**kwargs, "v_sharpness": sharp.tolist()})
            # spike potential per neuron (no v_sharpness = 0 here): thr
            v_spike = np.broadcast_to(np.asarray(kwargs["thr"], dtype=np.float32), sharp.shape)
        else:
            cell = BuiltinAdExCell("z", n_units=n, integration_type=method, key=jax.random.PRNGKey(0),
                                   **{**kwargs, "v_sharpness": jnp.asarray(sharp, dtype=jnp.float32)})
            v_spike = None
        advance = MethodProcess("advance") >> cell.advance_state
        reset = MethodProcess("reset") >> cell.reset
    contextManager.remove_context(name)
    return cell, advance, reset, v_spike


def _make_runner(cell, advance, v_spike):
    """A jitted chunk of ``chunk`` steps accumulating per-neuron NaN/inf flags."""
    run = advance.run.compiled
    v_key, w_key = cell.v.target, cell.w.target
    order = advance.get_keywords()
    v_spike = None if v_spike is None else jnp.asarray(v_spike)

    @jax.jit
    def run_chunk(ctx, bad, above, spikes, t_rows, dt):
        def body(carry, t):
            ctx, bad, above, spikes = carry
            row = jnp.stack([t if k == "t" else dt for k in order])
            ctx, _ = run(ctx, row)
            v, w = ctx[v_key], ctx[w_key]
            bad = bad | ~jnp.isfinite(v) | ~jnp.isfinite(w)
            if v_spike is not None:
                above = above + (v > v_spike).astype(jnp.int32)
            spikes = spikes + ctx[cell.s.target].astype(jnp.int32)
            return (ctx, bad, above, spikes), None
        return jax.lax.scan(body, (ctx, bad, above, spikes), t_rows)[0]
    return run_chunk


def _lowest_bad_current(bad, cur, sharp):
    """{v_sharpness: lowest current whose neuron went NaN/inf (None: none did)}."""
    out = {}
    for d in SHARPNESS:
        hit = bad[0] & (sharp[0] == d)
        out[d] = float(np.min(cur[0][hit])) if hit.any() else None
    return out


def sweep(duration, n_currents, i_max, chunk=1000, verbose=True):
    """Returns rows (param set, cell, integrator, {dt: (n_bad, n_above, n_spikes, seconds,
    {v_sharpness: lowest bad current})}) and the population size."""
    cur, sharp = _population(n_currents, i_max)
    n = cur.shape[1]
    rows = []
    for pname, kwargs in parameter_sets().items():
        configs = [("ngc_adex", m) for m in METHODS] + [("ngclearn", m) for m in BUILTIN_METHODS]
        for kind, method in configs:
            cell, advance, reset, v_spike = _build(kind, method, kwargs, sharp)
            runner = _make_runner(cell, advance, v_spike)
            result = {}
            for dt in DTS:
                start = time.perf_counter()
                reset.run()
                cell.j.set(jnp.asarray(cur, dtype=jnp.float32))
                ctx = dict(stateManager.state)
                n_steps = int(round(duration / dt))
                bad = jnp.zeros((1, n), dtype=bool)
                above = jnp.zeros((1, n), dtype=jnp.int32)
                spikes = jnp.zeros((1, n), dtype=jnp.int32)
                for i0 in range(0, n_steps, chunk):
                    # chunks of equal length (a shorter last one compiles once more)
                    idx = np.arange(i0, min(i0 + chunk, n_steps))
                    t_rows = jnp.asarray((idx + 1) * dt, dtype=jnp.float32)
                    ctx, bad, above, spikes = runner(ctx, bad, above, spikes, t_rows, jnp.float32(dt))
                jax.block_until_ready(bad)
                result[dt] = (int(np.sum(np.asarray(bad))), int(np.sum(np.asarray(above))),
                              int(np.sum(np.asarray(spikes))), time.perf_counter() - start,
                              _lowest_bad_current(np.asarray(bad), cur, sharp))
                if verbose:
                    print(f"  {pname:<19} {kind:<9} {method:<9} dt={dt:<5} non-finite={result[dt][0]:5d}  "
                          f"v>thr={result[dt][1]:3d}  spikes={result[dt][2]:9d}  {result[dt][3]:6.1f} s", flush=True)
            rows.append((pname, kind, method, result))
    return rows, n


def table(rows, n, duration, n_currents, i_max):
    lines = []
    lines.append(f"NaN/inf: neurons whose v or w became NaN/inf at any step, out of {n} "
                 f"({n_currents} currents 0-{i_max:g} x v_sharpness {'/'.join(f'{s:g}' for s in SHARPNESS)}), "
                 f"{duration:g} ms per configuration")
    head = f"{'parameters':<19} {'cell':<9} {'integrator':<10}" + "".join(f"{'dt=' + format(dt, 'g'):>9}" for dt in DTS)
    head += f"{'total':>8} {'v>thr':>6}"
    lines.append(head)
    lines.append("-" * len(head))
    for pname, kind, method, result in rows:
        counts = [result[dt][0] for dt in DTS]
        above = sum(result[dt][1] for dt in DTS)
        line = f"{pname:<19} {kind:<9} {method:<10}" + "".join(f"{c:>9d}" for c in counts)
        line += f"{sum(counts):>8d} {(str(above) if kind == 'ngc_adex' else '-'):>6}"
        lines.append(line)
    ours = sum(sum(r[3][dt][0] + r[3][dt][1] for dt in DTS) for r in rows if r[1] == "ngc_adex")
    theirs = sum(sum(r[3][dt][0] for dt in DTS) for r in rows if r[1] == "ngclearn")
    lines.append("-" * len(head))
    lines.append(f"ngc_adex: {ours} NaN/inf or v>thr events in total; ngc-learn built-in: {theirs} neurons "
                 f"went NaN/inf")
    lines.append("")
    lines.append("lowest current that went NaN/inf (per v_sharpness; '-' = none):")
    head = f"{'parameters':<19} {'cell':<9} {'integrator':<10} {'v_sharp':>7}" + \
        "".join(f"{'dt=' + format(dt, 'g'):>9}" for dt in DTS)
    lines.append(head)
    lines.append("-" * len(head))
    for pname, kind, method, result in rows:
        if all(result[dt][0] == 0 for dt in DTS):
            continue
        for d in SHARPNESS:
            cells = [result[dt][4][d] for dt in DTS]
            lines.append(f"{pname:<19} {kind:<9} {method:<10} {d:>7g}" +
                         "".join(f"{('-' if x is None else format(x, 'g')):>9}" for x in cells))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=1000., help="ms per configuration (Default: 1000)")
    ap.add_argument("--n-currents", type=int, default=501, help="currents in [0, i-max] (Default: 501)")
    ap.add_argument("--i-max", type=float, default=5000., help="largest current (Default: 5000)")
    ap.add_argument("--chunk", type=int, default=1000, help="steps per compiled chunk (Default: 1000)")
    ap.add_argument("--quiet", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    rows, n = sweep(args.duration, args.n_currents, args.i_max, args.chunk, verbose=not args.quiet)
    print()
    print(table(rows, n, args.duration, args.n_currents, args.i_max))
    print(f"(jax {jax.__version__}, {jax.devices()[0].platform}; {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
