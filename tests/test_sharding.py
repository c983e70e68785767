"""An AdExCell population sharded over the neuron axis of 2 (forced host) CPU
devices gives bitwise the same spikes and states as the unsharded run, with no
communication in the step, and its outputs really are sharded.

The checks run in a subprocess because ``--xla_force_host_platform_device_count``
must be set before jax is imported (this pytest process has already imported
it). The file is its own child: ``python tests/test_sharding.py --child``.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_DEVICES = 2


def _run_child(*args):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"child failed:\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
@pytest.mark.parametrize("method,n", [("euler", 1024), ("precise", 1024), ("euler", 8192), ("precise", 8192)])
def test_sharded_scan_is_bitwise_identical(method, n):
    res = _run_child("pure", method, str(n))
    assert res["devices"] == N_DEVICES
    assert res["spikes"] > 0, "the population must spike for the test to mean anything"
    assert res["mismatch"] == [], f"sharded run differs from unsharded in {res['mismatch']}"
    assert res["sharded"], res["shardings"]
    if method == "precise":
        # the one exchange: whether any lane of the population needs sub-flights (a scalar all-reduce
        # each step; gathering those lanes, inside the branch that runs only then, exchanges more)
        assert set(k for k, v in res["collectives"].items() if v) <= {"all-reduce", "all-gather"}, res["collectives"]
    else:
        assert sum(res["collectives"].values()) == 0, f"a neuron-local step needs no communication: {res['collectives']}"


@pytest.mark.subprocess
def test_sharded_state_through_method_process_scan():
    res = _run_child("process", "precise")
    assert res["devices"] == N_DEVICES
    assert res["spikes"] > 0
    assert res["mismatch"] == [], f"sharded run differs from unsharded in {res['mismatch']}"
    assert res["sharded"], res["shardings"]


# ----------------------------------------------------------------------------
# the child (jax imported only here, after XLA_FLAGS is set)
# ----------------------------------------------------------------------------
def _population(method, n, name):
    import numpy as np
    from ngclearn import Context
    import ngc_adex

    rng = np.random.default_rng(1)
    kw = ngc_adex.preset_kwargs("brette_gerstner_2005")
    kw["b"] = rng.uniform(40., 120., (1, n)).tolist()  # per-neuron parameter: sharded coefficients too
    with Context(name) as ctx:
        cell = ngc_adex.AdExCell("z", n_units=n, integration_type=method, **kw)
    current = rng.uniform(400., 1600., (1, n)).astype(np.float32)
    return ctx, cell, current


def _shard_info(arrays, sharding, n_dev):
    ok, desc = True, {}
    for name, a in arrays.items():
        shards = a.addressable_shards
        desc[name] = f"{a.sharding} / {[s.data.shape for s in shards]}"
        ok &= (a.sharding.is_equivalent_to(sharding, a.ndim) and len(shards) == n_dev
               and len({s.device for s in shards}) == n_dev
               and all(s.data.shape[-1] == a.shape[-1] // n_dev for s in shards))
    return bool(ok), desc


def _child_pure(method, n=1024, steps=1000, dt=0.1):
    """cell.step_fn under jax.lax.scan, jitted with and without shardings."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from ngc_adex import numerics

    _, cell, current = _population(method, n, f"shard_pure_{method}")
    step = cell.step_fn

    def run(state, j, ts, dt=dt):  # dt: a Python float (a compile-time constant), or traced
        def body(s, t):
            s = numerics.AdExState(*step(*s, j, t, dt))
            return s, (s.s, s.t_spike)
        return jax.lax.scan(body, state, ts)

    state = numerics.AdExState(*(c.get() for c in (cell.v, cell.w, cell.ref_left, cell.s, cell.tols, cell.t_spike)))
    j = jnp.asarray(current)
    ts = (jnp.arange(steps, dtype=jnp.float32) + 1.) * dt

    plain = jax.jit(run)(state, j, ts)

    mesh = Mesh(np.array(jax.devices()), ("neurons",))
    neuron = NamedSharding(mesh, P(None, "neurons"))          # (batch, n_units)
    trace = NamedSharding(mesh, P(None, None, "neurons"))     # (steps, batch, n_units)
    replicated = NamedSharding(mesh, P())
    state_sh = jax.tree_util.tree_map(lambda a: jax.device_put(a, neuron), state)
    j_sh = jax.device_put(j, neuron)
    sharded_run = jax.jit(run, in_shardings=(neuron, neuron, replicated),
                          out_shardings=(neuron, (trace, trace)))
    sharded = sharded_run(state_sh, j_sh, ts)
    # the same with dt traced (as MethodProcess.scan passes it)
    sharded_traced = jax.jit(run, in_shardings=(neuron, neuron, replicated, replicated),
                             out_shardings=(neuron, (trace, trace)))(state_sh, j_sh, ts, jnp.float32(dt))
    hlo = sharded_run.lower(state_sh, j_sh, ts).compile().as_text()
    collectives = {op: hlo.count(f" {op}(") for op in ("all-gather", "all-reduce", "all-to-all",
                                                        "collective-permute", "reduce-scatter")}

    names = [f"final.{f}" for f in numerics.AdExState._fields] + ["spikes", "t_spike_trace"]
    flat_plain = list(plain[0]) + list(plain[1])
    flat_sharded = list(sharded[0]) + list(sharded[1])
    max_diff = {nm: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                for nm, a, b in zip(names, flat_plain, flat_sharded)}
    mismatch = [f"{nm} (max |diff| {max_diff[nm]:.3g})" for nm, a, b in zip(names, flat_plain, flat_sharded)
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)]
    mismatch += [f"{nm} with dt traced" for nm, a, b in zip(names, flat_plain, list(sharded_traced[0])
                                                              + list(sharded_traced[1]))
                 if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)]
    ok1, d1 = _shard_info(dict(zip(numerics.AdExState._fields, sharded[0])), neuron, len(jax.devices()))
    ok2, d2 = _shard_info({"spikes": sharded[1][0], "t_spike_trace": sharded[1][1]}, trace, len(jax.devices()))
    return dict(devices=len(jax.devices()), spikes=float(np.asarray(plain[1][0]).sum()), mismatch=mismatch,
                sharded=ok1 and ok2, shardings={**d1, **d2}, collectives=collectives, max_diff=max_diff,
                spikes_equal=bool(np.array_equal(np.asarray(plain[1][0]), np.asarray(sharded[1][0]))))


def _child_process(method, n=1024, steps=1000, dt=0.1):
    """The ngc-learn path: MethodProcess.scan over a state whose arrays are sharded."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from ngclearn import MethodProcess
    from ngcsimlib.global_state import stateManager

    ctx, cell, current = _population(method, n, f"shard_proc_{method}")
    with ctx:
        advance = MethodProcess("advance") >> cell.advance_state
        reset = MethodProcess("reset") >> cell.reset
        advance.watch(cell.s, cell.t_spike)
    reset.run()
    state = {k: v for k, v in stateManager.state.items() if k.startswith(f"shard_proc_{method}:")}
    state[cell.j.root] = jnp.asarray(current)
    rows = jnp.array(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt))

    plain_final, plain_out = advance.scan(rows, current_state=dict(state))

    mesh = Mesh(np.array(jax.devices()), ("neurons",))
    neuron = NamedSharding(mesh, P(None, "neurons"))
    sh_state = {k: (jax.device_put(v, neuron) if getattr(v, "ndim", 0) == 2 and v.shape[-1] == n else v)
                for k, v in state.items()}
    sh_final, sh_out = advance.scan(rows, current_state=sh_state)

    keys = [cell.v.root, cell.w.root, cell.s.root, cell.tols.root, cell.t_spike.root, cell.ref_left.root]
    mismatch = [k for k in keys if not np.array_equal(np.asarray(plain_final[k]), np.asarray(sh_final[k]))]
    mismatch += [f"watched[{i}]" for i in range(2)
                 if not np.array_equal(np.asarray(plain_out[i]), np.asarray(sh_out[i]))]
    ok, desc = _shard_info({k: sh_final[k] for k in keys}, neuron, len(jax.devices()))
    trace = NamedSharding(mesh, P(None, None, "neurons"))
    ok2, desc2 = _shard_info({"watched.s": sh_out[0]}, trace, len(jax.devices()))
    return dict(devices=len(jax.devices()), spikes=float(np.asarray(plain_out[0]).sum()), mismatch=mismatch,
                sharded=ok and ok2, shardings={**desc, **desc2})


if __name__ == "__main__" and len(sys.argv) >= 4 and sys.argv[1] == "--child":
    sys.path.insert(0, ROOT)
    if sys.argv[2] == "pure":
        out = _child_pure(sys.argv[3], *(int(x) for x in sys.argv[4:5]))
    else:
        out = _child_process(sys.argv[3])
    print(json.dumps(out))
