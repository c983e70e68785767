"""PoissonDrive and its numerics: the counts' distribution against the Poisson law (chi-square),
splitting gives independent per-target counts, the component in a scan, validation; and
save/load of a network of AdExCell, SparseProjection and PoissonDrive."""
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
from ngc_adex.numerics import poisson as PO

scipy_stats = pytest.importorskip("scipy.stats")
Z = 5.


def _chi2_pvalue(samples, lam):
    """p-value of a chi-square test of integer samples against Poisson(lam), bins with >= 5 expected."""
    n = samples.size
    kmax = int(samples.max()) + 1
    pmf = scipy_stats.poisson.pmf(np.arange(kmax + 1), lam)
    pmf[-1] = scipy_stats.poisson.sf(kmax - 1, lam)  # the last bin: >= kmax
    obs = np.bincount(np.minimum(samples, kmax), minlength=kmax + 1).astype(float)
    exp = pmf * n
    # merge bins from the top until each has >= 5 expected
    o, e = [], []
    acc_o = acc_e = 0.
    for i in range(kmax, -1, -1):
        acc_o += obs[i]
        acc_e += exp[i]
        if acc_e >= 5.:
            o.append(acc_o)
            e.append(acc_e)
            acc_o = acc_e = 0.
    if acc_e > 0:
        o[-1] += acc_o
        e[-1] += acc_e
    o, e = np.array(o), np.array(e)
    stat = np.sum((o - e) ** 2 / e)
    return scipy_stats.chi2.sf(stat, len(o) - 1)


@pytest.mark.parametrize("lam", [0.1] + [pytest.param(x, marks=pytest.mark.slow) for x in (0.01, 2., 12., 40.)])
def test_poisson_counts_follow_the_poisson_law(lam):
    counts = np.asarray(PO.poisson_counts(jax.random.PRNGKey(1), jnp.full((200_000,), lam)))
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    assert _chi2_pvalue(counts.astype(np.int64), lam) > 1e-4
    assert abs(counts.mean() - lam) < Z * np.sqrt(lam / counts.size)


@pytest.mark.slow
def test_poisson_counts_mixed_means_and_zero():
    lam = jnp.asarray(np.tile([0., 0.05, 1., 5.], 50_000))
    counts = np.asarray(PO.poisson_counts(jax.random.PRNGKey(2), lam)).reshape(-1, 4)
    assert np.all(counts[:, 0] == 0)
    for j, l in enumerate([0.05, 1., 5.], start=1):
        assert _chi2_pvalue(counts[:, j].astype(np.int64), l) > 1e-4


@pytest.mark.slow
def test_split_counts_are_independent_poisson():
    rng = np.random.default_rng(0)
    n, steps = 300, 4000
    k = rng.integers(0, 40, n)  # heterogeneous sources per target, some 0
    lam_source = 2.5e-3  # 25 Hz at dt = 0.1 ms
    ends = jnp.asarray(np.cumsum(k), jnp.int32)
    keys = jax.random.split(jax.random.PRNGKey(3), steps)
    f = jax.jit(jax.vmap(lambda key: PO.split_counts(key, ends, lam_source, 2, max_events=8)))
    counts = np.asarray(f(keys))  # (steps, 2, n); small max_events: several rounds
    assert np.all(counts[..., k == 0] == 0)
    mean = counts.mean(axis=(0, 1))
    lam = k * lam_source
    m = 2 * steps
    assert np.all(np.abs(mean - lam) < Z * np.sqrt(np.maximum(lam, 1e-12) / m))
    # the step total is Poisson(sum lam): variance = mean (a fixed total would give 0)
    total = counts.sum(axis=2).ravel()
    assert abs(total.var(ddof=1) / lam.sum() - 1) < Z * np.sqrt(2. / (m - 1))
    assert _chi2_pvalue(total.astype(np.int64), lam.sum()) > 1e-4
    # pooled over targets: variance = mean; targets uncorrelated
    busy = k > 20
    assert abs(counts[..., busy].var(axis=(0, 1), ddof=1).sum() / lam[busy].sum() - 1) < 0.1
    c = np.corrcoef(counts[:, 0, busy].T)
    off = c[~np.eye(c.shape[0], dtype=bool)]
    assert abs(off.mean()) < Z / np.sqrt(steps) / np.sqrt(off.size) * 10
    # the two batch rows are independent draws
    assert not np.array_equal(counts[:, 0], counts[:, 1])


@pytest.mark.parametrize("method", ["split", pytest.param("inverse_cdf", marks=pytest.mark.slow)])
def test_drive_component_rate_and_weight(method):
    n, steps, dt = 200, 3000, 0.1
    with Context(unique_name("drive")):
        d = PoissonDrive("d", n, rate=20., n_sources=[5] * 100 + [15] * 100, weight=0.5, method=method,
                         batch_size=2, key=jax.random.PRNGKey(4))
        advance, reset = processes(d, watch=(d.outputs,))
    reset.run()
    _, (out,) = advance.scan(jnp.asarray(advance.pack_rows(steps, t=lambda i: (i + 1) * dt, dt=dt)))
    counts = np.asarray(out) / 0.5
    assert np.all(counts == np.round(counts))
    for sl, k in ((slice(0, 100), 5), (slice(100, 200), 15)):
        lam = k * 20. * dt / 1000.
        m = steps * 2 * 100
        assert abs(counts[..., sl].mean() - lam) < Z * np.sqrt(lam / m)


def test_drive_validation():
    with Context(unique_name("bad_drive")):
        for kwargs, match in [(dict(rate=-1.), "rate must be a finite number >= 0"),
                              (dict(n_sources=-2), "n_sources must be an integer >= 0"),
                              (dict(n_sources=[1, 2]), "n_sources must be"),
                              (dict(weight=float("nan")), "weight must be a finite number"),
                              (dict(method="exact"), "method must be one of"),
                              (dict(max_events=0), "max_events must be an integer >= 1")]:
            with pytest.raises(ValueError, match=match):
                PoissonDrive("bad", 10, **kwargs)
        with pytest.raises(ValueError, match="n_units"):
            PoissonDrive("bad", 0)
    contextManager.step_to([])


def test_binomial_sources_statistics():
    k = np.asarray(PoissonDrive.binomial_sources(5000, 8000, 0.05, seed=1))
    assert abs(k.mean() - 400.) < Z * np.sqrt(8000 * 0.05 * 0.95 / 5000)


# ----------------------------------------------------------------------------
# save / load of a network
# ----------------------------------------------------------------------------
RS = dict(C=200., g_L=10., E_L=-63., V_T=-50., Delta_T=2., V_reset=-55., V_peak=-40., a=0., tau_w=500., b=1.,
          t_ref=5.)
REC = [{"name": "exc", "kind": "exp", "tau_decay": 5., "e_rev": 0.},
       {"name": "inh", "kind": "exp", "tau_decay": 5., "e_rev": -80.}]


def _network(name, n=80):
    k = jax.random.split(jax.random.PRNGKey(21), 4)
    rng = np.random.default_rng(5)
    pre = rng.integers(0, n, 300)
    post = rng.integers(0, n, 300)
    with Context(name) as ctx:
        z = AdExCell("z", n, integration_type="precise", receptors=REC, **ngc_adex.from_physical(**RS))
        drive = PoissonDrive("drive", n, rate=2.5, n_sources=PoissonDrive.binomial_sources(n, 8000, 0.05),
                             weight=1.5, key=k[0])
        W_e = SparseProjection("W_e", (n, n), p=0.1, allow_autapses=False, weight=1.5, delay=2, key=k[1])
        W_i = SparseProjection("W_i", (n, n), pre=pre, post=post, weight=rng.uniform(1., 5., 300),
                               delay=rng.integers(0, 4, 300), max_spikes=2, key=k[2])
        z.s >> W_e.inputs
        z.s >> W_i.inputs
        Summation(W_e.outputs, drive.outputs) >> z.exc
        W_i.outputs >> z.inh
        processes(drive, W_e, W_i, z, watch=(z.s,))
    return ctx


def _continue(ctx, first, steps, dt=0.1):
    advance = ctx.get_objects_by_type("process")["advance"]
    rows = jnp.asarray(advance.pack_rows(steps, t=lambda i: (first + i + 1) * dt, dt=dt))
    final, (s,) = advance.scan(rows)
    stateManager.set_state(settled_state(final))
    return np.asarray(s)


@pytest.mark.slow
def test_network_save_load_continues_exactly(tmp_path):
    name = unique_name("saved_net")
    ctx = _network(name)
    ctx.get_objects_by_type("process")["reset"].run()
    s0 = _continue(ctx, 0, 600)
    assert s0.sum() > 20
    ctx.save_to_json(str(tmp_path), name, overwrite=True)
    before = {(p, c): np.asarray(getattr(ctx.get_components(p), c).get())
              for p, c in (("W_i", "weights"), ("W_i", "targets"), ("W_i", "delays"), ("W_e", "targets"))}
    s1 = _continue(ctx, 600, 600)
    contextManager.remove_context(name)
    loaded = Context.load(str(tmp_path), name)
    assert isinstance(loaded.get_components("W_e"), SparseProjection)
    assert isinstance(loaded.get_components("drive"), PoissonDrive)
    for (p, c), value in before.items():
        np.testing.assert_array_equal(np.asarray(getattr(loaded.get_components(p), c).get()), value)
    s1_loaded = _continue(loaded, 600, 600)
    assert s1.sum() > 20
    np.testing.assert_array_equal(s1_loaded, s1)
