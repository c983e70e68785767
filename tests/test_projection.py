"""SparseProjection and its numerics: connectivity statistics against the rules' distributions,
exact delays, no dropped spikes, equality with a dense numpy reference, validation, save/load."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
from ngclearn import Context, Summation
from ngcsimlib.context import contextManager
from ngcsimlib.global_state import stateManager

from conftest import processes, settled_state, unique_name

import ngc_adex
from ngc_adex import AdExCell, PoissonDrive, SparseProjection
from ngc_adex.numerics import projection as P

Z = 5.  # tolerance in standard deviations of the statistic under the rule's distribution


# ----------------------------------------------------------------------------
# connectivity
# ----------------------------------------------------------------------------
def _degrees(pre, post, n_pre, n_post):
    return np.bincount(pre, minlength=n_pre), np.bincount(post, minlength=n_post)


def _assert_simple(pre, post, n_post, autapses):
    pairs = pre * n_post + post
    assert np.unique(pairs).size == pairs.size, "a multapse"
    if not autapses:
        assert not np.any(pre == post), "an autapse"


@pytest.mark.parametrize("autapses", [True, False])
def test_pairwise_bernoulli_statistics(autapses):
    n, p = 400, 0.1
    pre, post = P.connect("pairwise_bernoulli", n, n, seed=3, p=p, allow_autapses=autapses)
    _assert_simple(pre, post, n, autapses)
    pairs = n * n if autapses else n * (n - 1)
    assert abs(pre.size - pairs * p) < Z * np.sqrt(pairs * p * (1 - p))
    diag = np.sum(pre == post)
    if autapses:  # the diagonal is connected like any pair
        assert abs(diag - n * p) < Z * np.sqrt(n * p * (1 - p))
    out_deg, in_deg = _degrees(pre, post, n, n)
    m = n if autapses else n - 1
    for deg in (out_deg, in_deg):  # Binomial(m, p): mean and variance
        assert abs(deg.mean() - m * p) < Z * np.sqrt(m * p * (1 - p) / n)
        var = m * p * (1 - p)
        assert abs(deg.var(ddof=1) / var - 1) < Z * np.sqrt(2. / (n - 1))
    # no structure along the pair list: the first and second half of the targets are equally likely
    assert abs(np.mean(post < n // 2) - 0.5) < Z * np.sqrt(0.25 / pre.size)


def test_pairwise_bernoulli_extremes_and_rectangular():
    pre, post = P.connect("pairwise_bernoulli", 30, 50, seed=1, p=0.)
    assert pre.size == 0
    pre, post = P.connect("pairwise_bernoulli", 30, 50, seed=1, p=1., allow_autapses=False)
    assert pre.size == 30 * 50 - 30
    pre, post = P.connect("all_to_all", 3, 4, seed=0)
    assert list(zip(pre, post)) == [(i, j) for i in range(3) for j in range(4)]


@pytest.mark.parametrize("k,n_pre,n_post", [(20, 300, 200), (250, 300, 200), (40, 100, 300)])
@pytest.mark.parametrize("autapses", [True, False])
def test_fixed_indegree(k, n_pre, n_post, autapses):
    pre, post = P.connect("fixed_indegree", n_pre, n_post, seed=5, indegree=k, allow_autapses=autapses)
    _assert_simple(pre, post, n_post, autapses)
    out_deg, in_deg = _degrees(pre, post, n_pre, n_post)
    assert np.all(in_deg == k)
    # each target picks k of its candidates uniformly: a source's out-degree is a sum of
    # Bernoulli(k / candidates) over the targets
    cand = n_pre if autapses else n_pre - 1
    q = k / cand
    exp_mean = n_post * k / n_pre
    sd = np.sqrt(n_post * q * (1 - q))
    assert abs(out_deg.mean() - exp_mean) < 1e-9  # every connection is counted once
    assert abs(out_deg.var(ddof=1) / max(sd ** 2, 1e-12) - 1) < Z * np.sqrt(2. / (n_pre - 1)) + 0.1


@pytest.mark.parametrize("k", [30, 180])
def test_fixed_outdegree(k):
    n_pre, n_post = 250, 200
    pre, post = P.connect("fixed_outdegree", n_pre, n_post, seed=7, outdegree=k, allow_autapses=False)
    _assert_simple(pre, post, n_post, False)
    out_deg, in_deg = _degrees(pre, post, n_pre, n_post)
    assert np.all(out_deg == k)
    q = k / (n_post - 1)
    assert abs(in_deg.var(ddof=1) / (n_pre * q * (1 - q)) - 1) < Z * np.sqrt(2. / (n_post - 1)) + 0.1


def test_connectivity_reproducible_from_seed_and_key():
    a = P.connect("pairwise_bernoulli", 100, 100, seed=42, p=0.2)
    b = P.connect("pairwise_bernoulli", 100, 100, seed=42, p=0.2)
    c = P.connect("pairwise_bernoulli", 100, 100, seed=43, p=0.2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].size != c[0].size or not np.array_equal(a[1], c[1])
    with Context(unique_name("seed")):
        p1 = SparseProjection("p1", (50, 60), p=0.3, key=jax.random.PRNGKey(9))
        p2 = SparseProjection("p2", (50, 60), p=0.3, key=jax.random.PRNGKey(9))
        p3 = SparseProjection("p3", (50, 60), p=0.3, seed=p1.seed)
    for x, y, z in zip(p1.connections(), p2.connections(), p3.connections()):
        assert np.array_equal(x, y) and np.array_equal(x, z)


def test_ell_layout_round_trip():
    rng = np.random.default_rng(0)
    pre = rng.integers(0, 20, 200)
    post = rng.integers(0, 30, 200)
    w = rng.normal(size=200)
    d = rng.integers(0, 5, 200)
    tg, W, D = P.ell_layout(pre, post, w, d, 20, 30, np.float64)
    assert tg.shape == (20, np.bincount(pre, minlength=20).max())
    dense = np.zeros((5, 20, 30))
    np.add.at(dense, (d, pre, post), w)
    np.testing.assert_allclose(P.dense_matrices(tg, W, D, 30), dense, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------
# delivery against a dense reference
# ----------------------------------------------------------------------------
def _dense_reference(W, S):
    """out_t = sum_d S_{t-d} @ W[d] (float64)."""
    T = S.shape[0]
    out = np.zeros((T,) + S.shape[1:-1] + (W.shape[-1],))
    for d in range(W.shape[0]):
        out[d:] += S[:T - d].astype(np.float64) @ W[d]
    return out


def _run_numerics(tg, W, D, S, n_slots, max_spikes, uniform_delay=None):
    batch = S.shape[1]
    n_post = int(np.max(tg))  # the dump slot index is n_post (every row has a pad)
    buf = jnp.zeros((n_slots, batch, n_post + 1))

    def body(c, s):
        out, b, h = P.step(c[0], c[1], s, tg, W, D, max_spikes, uniform_delay)
        return (b, h), out

    return np.asarray(jax.jit(lambda S: jax.lax.scan(body, (buf, jnp.int32(0)), S)[1])(jnp.asarray(S)))


@pytest.mark.parametrize("max_spikes", [1, 3, 64])
def test_numerics_equal_dense_reference(max_spikes):
    rng = np.random.default_rng(1)
    n_pre, n_post, T = 60, 45, 40
    pre, post = P.connect("pairwise_bernoulli", n_pre, n_post, seed=2, p=0.2)
    w = rng.normal(size=pre.size)
    d = rng.integers(0, 4, pre.size)
    tg, W, D = P.ell_layout(pre, post, w, d, n_pre, n_post)
    tg = np.concatenate([tg, np.full((n_pre, 1), n_post, np.int32)], 1)  # a pad in every row
    W = np.concatenate([W, np.zeros((n_pre, 1), W.dtype)], 1)
    D = np.concatenate([D, np.zeros((n_pre, 1), np.int32)], 1)
    S = (rng.random((T, 2, n_pre)) < 0.15).astype(np.float32)
    S[5] = 1.  # every neuron spikes in one step
    S[6, 1] = rng.random(n_pre) * 2.  # graded inputs scale the weights
    out = _run_numerics(tg, W, D, S, 4, max_spikes)
    ref = _dense_reference(P.dense_matrices(tg, W, D, n_post), S)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_compact_orders_and_pads():
    s = jnp.asarray([[0, 1, 0, 1, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]], jnp.float32)
    idx, count = P.compact(s, 3)
    assert idx.tolist() == [[1, 3, 4], [8, 8, 8]] and count.tolist() == [4, 0]
    idx, _ = P.compact(s, 3, offset=3)
    assert idx.tolist() == [[7, 8, 8], [8, 8, 8]]
    big = (np.arange(700) % 7 == 0).astype(np.float32)[None]  # ranks past one block
    idx, count = P.compact(jnp.asarray(big), 120)
    want = np.nonzero(big[0])[0]
    assert int(count[0]) == want.size and np.array_equal(np.asarray(idx[0, :want.size]), want)


def _projection_circuit(name, proj_kwargs, n_pre, n_post, batch=1):
    """A projection fed from a free input compartment; returns (ctx, proj, advance, reset)."""
    with Context(name) as ctx:
        proj = SparseProjection("proj", (n_pre, n_post), batch_size=batch, **proj_kwargs)
        advance, reset = processes(proj, watch=(proj.outputs,))
    return ctx, proj, advance, reset


def _drive(proj, advance, S):
    """Runs ``advance`` one step per row of S, written into the projection's (unwired) inputs
    each step: its outputs (T, batch, n_post)."""
    state = settled_state(stateManager.state)
    rows = jnp.asarray(advance.pack_rows(S.shape[0], t=lambda i: (i + 1) * 0.1, dt=0.1))
    compiled = advance.run.compiled

    def body(st, xs):
        s, row = xs
        st, _ = compiled({**st, proj.inputs.target: s}, row)
        return st, st[proj.outputs.target]

    _, outs = jax.jit(lambda st, S, rows: jax.lax.scan(body, st, (S, rows)))(state, jnp.asarray(S), rows)
    return np.asarray(outs)


def test_component_delays_exact_and_delay_zero():
    # one connection per delay 0..4, each from its own source to its own target
    pre = np.arange(5)
    post = np.arange(5)[::-1].copy()
    weight = np.array([1., 2., 3., 4., 5.])
    ctx, proj, advance, reset = _projection_circuit(
        unique_name("delays"), dict(pre=pre, post=post, weight=weight, delay=np.arange(5)), 5, 5)
    reset.run()
    assert proj.max_delay == 4 and proj.n_connections == 5
    T = 12
    S = np.zeros((T, 1, 5), np.float32)
    S[2] = 1.  # all five spike in step 2
    S[3, 0, 4] = 1.  # source 4 (delay 4) again in step 3
    out = _drive(proj, advance, S)
    for d in range(5):
        got = out[:, 0, 4 - d]
        want = np.zeros(T)
        want[2 + d] = weight[d]
        if d == 4:
            want[3 + d] += weight[d]
        np.testing.assert_array_equal(got, want, err_msg=f"delay {d}")


def test_component_every_neuron_spikes_nothing_dropped():
    n_pre, n_post = 300, 120
    ctx, proj, advance, reset = _projection_circuit(
        unique_name("burst"), dict(p=0.3, weight=0.5, delay=1, max_spikes=4, key=jax.random.PRNGKey(3)),
        n_pre, n_post, batch=2)
    reset.run()
    T = 6
    S = np.zeros((T, 2, n_pre), np.float32)
    S[1] = 1.  # every neuron of both rows
    S[3, 0, ::2] = 1.
    out = _drive(proj, advance, S)
    pre, post, w, d = proj.connections()
    Wd = np.zeros((2, n_pre, n_post))
    np.add.at(Wd, (d, pre, post), w)
    ref = _dense_reference(Wd, S)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-5)
    assert out[2, 0].sum() == pytest.approx(0.5 * proj.n_connections, rel=1e-6)  # every connection delivered


@pytest.mark.slow
def test_network_equals_dense_reference():
    """A recurrent AdEx population through a SparseProjection (delays 0-3 steps) gives the same
    spikes as the same population fed the dense numpy-built sums ``sum_d s_{t-1-d} @ W[d]``.
    Weights are multiples of 1/4, so every sum is exact in float32 in any order."""
    n, T = 60, 1500
    rng = np.random.default_rng(4)
    pre, post = P.connect("pairwise_bernoulli", n, n, seed=8, p=0.2, allow_autapses=False)
    w = rng.integers(2, 9, pre.size) * 0.25
    d = rng.integers(0, 4, pre.size)
    rec = [{"name": "exc", "kind": "exp", "tau_decay": 5., "e_rev": 0.},
           {"name": "ext", "kind": "exp", "tau_decay": 5., "e_rev": 0.}]
    kw = ngc_adex.from_physical(C=200., g_L=10., E_L=-63., V_T=-50., Delta_T=2., V_reset=-55., V_peak=-40.,
                                a=0., tau_w=500., b=1., t_ref=5.)
    ext = jnp.asarray((rng.random((T, 1, n)) < 0.08) * 3., jnp.float32)  # nS per step
    rows_of = lambda adv: jnp.asarray(adv.pack_rows(T, t=lambda i: (i + 1) * 0.1, dt=0.1))

    with Context(unique_name("net_sparse")):
        z = AdExCell("z", n, integration_type="euler", receptors=rec, **kw)
        W = SparseProjection("W", (n, n), pre=pre, post=post, weight=w, delay=d)
        z.s >> W.inputs
        W.outputs >> z.exc
        advance, reset = processes(W, z)
    with Context(unique_name("net_dense")):
        zr = AdExCell("zr", n, integration_type="euler", receptors=rec, **kw)
        advance_r, reset_r = processes(zr)
    reset.run()
    reset_r.run()
    state = settled_state(stateManager.state)
    f, fr = advance.run.compiled, advance_r.run.compiled

    def body(st, xs):
        e, row = xs
        st, _ = f({**st, z.ext.target: e}, row)
        return st, st[z.s.target]

    _, s_sparse = jax.jit(lambda st: jax.lax.scan(body, st, (ext, rows_of(advance))))(state)
    Wd = np.zeros((4, n, n), np.float32)  # from the connections given, not from the component
    np.add.at(Wd, (d, pre, post), w)
    Wd = jnp.asarray(Wd)
    hist0 = jnp.zeros((Wd.shape[0], 1, n), jnp.float32)  # s_{t-1}, s_{t-2}, ...

    def body_r(c, xs):
        st, hist = c
        e, row = xs
        syn = jnp.einsum("dbi,dij->bj", hist, Wd)
        st, _ = fr({**st, zr.exc.target: syn, zr.ext.target: e}, row)
        s = st[zr.s.target]
        return (st, jnp.concatenate([s[None], hist[:-1]])), s

    _, s_dense = jax.jit(lambda st: jax.lax.scan(body_r, (st, hist0), (ext, rows_of(advance_r))))(state)
    s_sparse, s_dense = np.asarray(s_sparse), np.asarray(s_dense)
    assert s_dense.sum() > 200, "the network must spike for the test to mean anything"
    np.testing.assert_array_equal(s_sparse, s_dense)


def test_validation_errors():
    with Context(unique_name("bad")):
        for kwargs, match in [
            (dict(p=1.5), "p must be a probability in \\[0, 1\\]"),
            (dict(p=-0.1), "p must be a probability"),
            (dict(p=None), "p must be a probability"),
            (dict(rule="fixed_indegree", indegree=11), "indegree must be an integer in \\[0, 10\\]"),
            (dict(rule="fixed_indegree", indegree=10, allow_autapses=False), "indegree must be an integer in \\[0, 9\\]"),
            (dict(rule="fixed_outdegree", outdegree=-1), "outdegree must be an integer"),
            (dict(rule="nope"), "rule must be one of"),
            (dict(p=0.5, delay=-1), "delay must be an integer >= 0"),
            (dict(p=0.5, delay=1.5), "with a connectivity rule"),
            (dict(pre=[0, 1], post=[0]), "same length"),
            (dict(pre=[0, 10], post=[0, 1]), "pre indices must lie in \\[0, 9\\]"),
            (dict(pre=[0, 1], post=[0, 1], delay=[0, -2]), "delay must be"),
            (dict(pre=[0, 1], post=[0, 1], weight=[1., np.inf]), "weight must be finite"),
            (dict(pre=[0, 1], post=[0, 1], weight=[1., 2., 3.]), "one per connection"),
            (dict(p=0.5, max_spikes=0), "max_spikes must be an integer >= 1"),
        ]:
            with pytest.raises(ValueError, match=match):
                SparseProjection("bad", (10, 10), **kwargs)
        with pytest.raises(ValueError, match="shape must be"):
            SparseProjection("bad", 10, p=0.1)
        with pytest.raises(ValueError, match="n_pre"):
            SparseProjection("bad", (0, 10), p=0.1)
        with pytest.raises(TypeError, match="unexpected keyword"):
            SparseProjection("bad", (10, 10), p=0.1, prob=0.2)
    contextManager.step_to([])


def test_help_and_modules_registry():
    info = SparseProjection.help()
    assert "SparseProjection" in info and "weights" in info["compartments"]["states"]
    assert "PoissonDrive" in PoissonDrive.help()
    reg = ngc_adex.load_modules()
    assert reg.resolve("sparse_projection") is SparseProjection
    assert reg.resolve("poisson_drive") is PoissonDrive
