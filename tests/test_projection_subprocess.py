"""SparseProjection and PoissonDrive in a network sharded over 2 (forced host) CPU devices give
the same spikes as on one device; and the projection is exact under float64.

Both run in a subprocess (``--xla_force_host_platform_device_count`` and ``jax_enable_x64`` must
be set before jax is imported); the file is its own child: ``python tests/test_projection_subprocess.py
--child shard|x64``.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_DEVICES = 2


def _run_child(mode):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    if mode == "x64":
        env["JAX_ENABLE_X64"] = "1"
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"child failed:\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_sharded_network_gives_the_same_spikes():
    res = _run_child("shard")
    assert res["devices"] == N_DEVICES
    assert res["spikes"] > 100, "the network must spike for the test to mean anything"
    assert res["sharded"] > 0, "some state must really be sharded"
    assert res["mismatch"] == 0


@pytest.mark.subprocess
def test_projection_exact_under_float64():
    res = _run_child("x64")
    assert res["dtype"] == "float64"
    assert res["max_err"] < 1e-12


# ----------------------------------------------------------------------------
# the child (jax imported only here)
# ----------------------------------------------------------------------------
def _child_shard():
    import numpy as np
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from ngclearn import Context, MethodProcess, Summation
    from ngcsimlib.global_state import stateManager
    import ngc_adex

    n, T = 256, 1500
    rec = [{"name": "exc", "kind": "exp", "tau_decay": 5., "e_rev": 0.},
           {"name": "inh", "kind": "exp", "tau_decay": 5., "e_rev": -80.}]
    kw = ngc_adex.from_physical(C=200., g_L=10., E_L=-63., V_T=-50., Delta_T=2., V_reset=-55., V_peak=-40.,
                                a=0., tau_w=500., b=1., t_ref=5.)
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    with Context("sharded_net"):
        z = ngc_adex.AdExCell("z", n, integration_type="precise", receptors=rec, **kw)
        drive = ngc_adex.PoissonDrive("drive", n, rate=2.5, n_sources=400, weight=1.5, key=k[0])
        W_e = ngc_adex.SparseProjection("W_e", (n, n), p=0.1, allow_autapses=False, weight=1.5, delay=1, key=k[1])
        W_i = ngc_adex.SparseProjection("W_i", (n, n), rule="fixed_indegree", indegree=10, weight=5., delay=2,
                                        key=k[2])
        z.s >> W_e.inputs
        z.s >> W_i.inputs
        Summation(W_e.outputs, drive.outputs) >> z.exc
        W_i.outputs >> z.inh
        advance, reset = MethodProcess("advance"), MethodProcess("reset")
        for c in (drive, W_e, W_i, z):
            advance >> c.advance_state
            reset >> c.reset
    reset.run()
    state = {key: jnp.asarray(v) for key, v in stateManager.state.items()}
    rows = jnp.asarray(advance.pack_rows(T, t=lambda i: (i + 1) * 0.1, dt=0.1))
    f = advance.run.compiled

    def run(st):
        def body(st, row):
            st, _ = f(st, row)
            return st, st[z.s.target]
        return jax.lax.scan(body, st, rows)[1]

    one = np.asarray(jax.jit(run)(state))
    mesh = Mesh(np.array(jax.devices()), ("neurons",))
    sharded, n_sharded = {}, 0
    for key, v in state.items():
        if v.ndim >= 1 and v.shape[-1] == n:
            spec = PartitionSpec(*([None] * (v.ndim - 1)), "neurons")
            n_sharded += 1
        else:
            spec = PartitionSpec()
        sharded[key] = jax.device_put(v, NamedSharding(mesh, spec))
    two = np.asarray(jax.jit(run)(sharded))
    return {"devices": len(jax.devices()), "spikes": int(one.sum()), "sharded": n_sharded,
            "mismatch": int(np.sum(one != two))}


def _child_x64():
    import numpy as np
    import jax
    import jax.numpy as jnp
    from ngc_adex.numerics import projection as P

    rng = np.random.default_rng(0)
    n_pre, n_post, T = 50, 40, 30
    pre, post = P.connect("pairwise_bernoulli", n_pre, n_post, seed=1, p=0.3)
    w = rng.normal(size=pre.size) * np.pi
    d = rng.integers(0, 3, pre.size)
    tg, W, D = P.ell_layout(pre, post, w, d, n_pre, n_post, np.float64)
    S = (rng.random((T, 1, n_pre)) < 0.3).astype(np.float64)
    buf = jnp.zeros((3, 1, n_post + 1))

    def body(c, s):
        out, b, h = P.step(c[0], c[1], s, tg, W, D, 4)
        return (b, h), out

    out = np.asarray(jax.lax.scan(body, (buf, jnp.int32(0)), jnp.asarray(S))[1])
    Wd = np.zeros((3, n_pre, n_post))
    np.add.at(Wd, (d, pre, post), w)
    ref = np.zeros_like(out)
    for dd in range(3):
        ref[dd:] += S[:T - dd] @ Wd[dd]
    return {"dtype": str(out.dtype), "max_err": float(np.abs(out - ref).max())}


if __name__ == "__main__" and "--child" in sys.argv:
    sys.path.insert(0, ROOT)
    mode = sys.argv[sys.argv.index("--child") + 1]
    sys.argv = sys.argv[:1]  # ngcsimlib parses sys.argv
    print(json.dumps(_child_shard() if mode == "shard" else _child_x64()))
