"""Spike-train analysis against hand-computed values, and the f-I curve runner."""
import json
import math

import numpy as np
import pytest

from ngc_adex import analysis as an
from ngc_adex.simulate import SimulationResult


def train_from_isis(first, isis):
    """Spike times with the first spike at ``first`` and the given intervals."""
    return np.concatenate([[first], first + np.cumsum(isis)])


# ----------------------------------------------------------------------------
# basic measures
# ----------------------------------------------------------------------------
def test_isi_sorts_and_differences():
    np.testing.assert_allclose(an.isi([30., 0., 10.]), [10., 20.])
    assert an.isi([]).size == 0 and an.isi([5.]).size == 0


def test_spike_train_rejects_bad_input():
    with pytest.raises(ValueError):
        an.isi([1., float("nan")])
    with pytest.raises(ValueError):
        an.isi([[1., 2.], [3., 4.]])


def test_first_spike_latency():
    assert an.first_spike_latency([7., 5., 9.]) == 5.
    assert an.first_spike_latency([5., 7.], onset=6.) == 1.
    assert math.isnan(an.first_spike_latency([]))


def test_firing_rate():
    assert an.firing_rate(np.arange(10) * 50. + 10., 500.) == pytest.approx(20.)
    assert an.firing_rate([100., 300., 400.], 200., start=250.) == pytest.approx(10.)  # window [250, 450]
    with pytest.raises(ValueError):
        an.firing_rate([1.], 0.)


def test_isi_cv_and_cv2():
    assert an.isi_cv(np.arange(20) * 10.) == pytest.approx(0., abs=1e-12)
    assert an.isi_cv([0., 1., 4.]) == pytest.approx(0.5)  # ISIs 1, 3: std 1, mean 2
    assert an.cv2(np.arange(20) * 10.) == pytest.approx(0., abs=1e-12)
    assert an.cv2(train_from_isis(0., [10., 30., 10., 30.])) == pytest.approx(1.)  # 2*20/40 each
    assert math.isnan(an.cv2([0., 1.]))


# ----------------------------------------------------------------------------
# adaptation index
# ----------------------------------------------------------------------------
def test_default_skip():
    assert [an.default_skip(n) for n in (0, 1, 2, 3, 5, 9, 10, 50)] == [0, 0, 0, 1, 1, 2, 2, 10]


@pytest.mark.parametrize("skip", [None, 0, 3])
def test_regular_train_has_zero_adaptation(skip):
    assert an.adaptation_index(np.arange(30) * 12.5 + 3., skip=skip) == pytest.approx(0., abs=1e-12)


@pytest.mark.parametrize("ratio", [1.2, 0.8, 1.05])
@pytest.mark.parametrize("skip", [None, 0, 4])
def test_geometric_isis_give_known_index(ratio, skip):
    # ISI_k = 5 r^k: every term is (r - 1)/(r + 1), whatever is skipped
    train = train_from_isis(2., 5. * ratio ** np.arange(15))
    assert an.adaptation_index(train, skip=skip) == pytest.approx((ratio - 1) / (ratio + 1), rel=1e-9)


def test_adaptation_index_by_hand():
    # ISIs 10, 20, 40: terms 10/30 and 20/60 -> mean 1/3
    assert an.adaptation_index(train_from_isis(0., [10., 20., 40.]), skip=0) == pytest.approx(1. / 3.)
    # the default skips the first of the 3 ISIs: the single term 20/60
    assert an.adaptation_index(train_from_isis(0., [10., 20., 40.])) == pytest.approx(1. / 3.)
    assert an.adaptation_index(train_from_isis(0., [10., 20., 40., 40.])) == pytest.approx((1. / 3. + 0.) / 2.)


def test_skip_removes_initial_transient():
    train = train_from_isis(5., [2., 3.] + [20.] * 10)  # an initial burst, then regular firing
    assert an.adaptation_index(train, skip=0) == pytest.approx((1. / 5. + 17. / 23.) / 11.)
    assert an.adaptation_index(train, skip=2) == pytest.approx(0., abs=1e-12)


def test_adaptation_index_undefined_or_invalid():
    assert math.isnan(an.adaptation_index([1., 2.]))
    assert math.isnan(an.adaptation_index(train_from_isis(0., [1., 2., 3.]), skip=2))
    with pytest.raises(ValueError):
        an.adaptation_index([0., 1., 2., 3.], skip=-1)


# ----------------------------------------------------------------------------
# bursts
# ----------------------------------------------------------------------------
def bursts_train(start=10., period=100., size=3, intra=3., n=5):
    return np.concatenate([start + k * period + intra * np.arange(size) for k in range(n)])


def test_regular_bursts_are_found():
    train = bursts_train()
    thr = an.burst_threshold(train)
    assert 3. < thr < 94.
    assert thr == pytest.approx(math.sqrt(3. * 94.))  # geometric mean across the gap
    assert an.detect_bursts(train) == [(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)]
    assert an.burst_fraction(train) == 1.


def test_no_bursts_without_a_gap():
    assert an.detect_bursts(np.arange(20) * 10.) == []
    assert an.burst_threshold(train_from_isis(0., 10. * 1.2 ** np.arange(10))) is None  # adapting
    assert an.burst_fraction(np.arange(20) * 10.) == 0.
    assert an.burst_fraction([]) == 0.


def test_initial_burst_then_single_spikes():
    train = np.concatenate([[5., 8., 12.], 12. + 60. * np.arange(1, 8)])
    assert an.detect_bursts(train) == [(0, 2)]
    assert an.burst_fraction(train) == pytest.approx(3 / 10)
    assert an.detect_bursts(train, threshold=1.) == []  # explicit threshold


# ----------------------------------------------------------------------------
# classification of synthetic trains
# ----------------------------------------------------------------------------
RNG = np.random.default_rng(0)
SYNTHETIC = {
    "silent": [],
    "transient": [30.],
    "sparse": [300., 450.],
    "tonic": 10. + 10. * np.arange(49),
    "adapting": train_from_isis(10., 10. * 1.1 ** np.arange(15)),
    "accelerating": train_from_isis(10., 20. * 0.97 ** np.arange(30)),
    "delayed": train_from_isis(100., [10.] * 39),
    "delayed_accelerating": train_from_isis(100., 20. * 0.97 ** np.arange(25)),
    "regular_bursting": bursts_train(),
    "delayed_regular_bursting": bursts_train(start=150., period=60., n=6),
    "initial_burst": np.concatenate([[5., 8., 12.], 12. + 60. * np.arange(1, 8)]),
    "irregular": 10. + np.cumsum(RNG.uniform(5., 40., 30)),
}


@pytest.mark.parametrize("label", sorted(SYNTHETIC))
def test_classify_synthetic(label):
    assert an.classify(SYNTHETIC[label], 500.) == label


def test_every_label_is_documented():
    assert set(SYNTHETIC) <= set(an.LABELS)
    assert set(an.EXPECTED_LABELS.values()) <= set(an.LABELS)
    assert all(an.EXPECTED_LABELS[name] == name for name in an.NAUD_PATTERNS)


def test_classify_thresholds_can_be_overridden():
    train = SYNTHETIC["adapting"]
    assert an.classify(train, 500., tonic_band=0.5) == "tonic"
    assert an.classify(SYNTHETIC["delayed"], 500., delay_ratio=100.) == "tonic"
    with pytest.raises(TypeError):
        an.classify(train, 500., no_such_threshold=1.)
    with pytest.raises(ValueError):
        an.classify(train, -1.)


def test_features_are_json_ready():
    f = an.features(SYNTHETIC["transient"], 500.)
    text = json.dumps(f, allow_nan=False)  # NaN became None
    assert f["adaptation_index"] is None and f["n_spikes"] == 1 and f["label"] == "transient"
    assert "burst_fraction" in json.loads(text)


# ----------------------------------------------------------------------------
# helpers that touch simulation results
# ----------------------------------------------------------------------------
def test_split_result():
    t = np.arange(1, 6) * 0.1
    res = SimulationResult(t=t, spike_times=np.array([0.2, 0.3, 0.4]), spike_index=np.array([1, 0, 1]),
                           traces={"v": np.arange(10.).reshape(5, 2)}, n_neurons=2)
    parts = an.split_result(res, ["a", "b"])
    np.testing.assert_allclose(parts["a"].spike_times, [0.3])
    np.testing.assert_allclose(parts["b"].spike_times, [0.2, 0.4])
    np.testing.assert_allclose(parts["b"].traces["v"][:, 0], [1., 3., 5., 7., 9.])
    assert parts["a"].n_neurons == 1
    with pytest.raises(ValueError):
        an.split_result(res, ["a"])


def test_simulate_one_needs_a_current_for_kwargs():
    from ngc_adex import preset_kwargs
    with pytest.raises(ValueError):
        an.simulate_one(preset_kwargs("tonic"))
    with pytest.raises(TypeError):
        an.fi_curve(42, [1.])


def test_fi_curve_population():
    currents = [0., 150., 500., 800.]
    rates, trains = an.fi_curve("tonic", currents, duration=500., dt=0.1, return_trains=True)
    assert rates.shape == (4,) and len(trains) == 4
    assert rates[0] == 0. and rates[1] == 0.  # below rheobase (about 200 pA)
    assert 100. <= rates[2] <= 104.  # 51 spikes in 500 ms at the published 500 pA
    assert rates[3] > rates[2]
    np.testing.assert_allclose(rates, [1000. * len(tr) / 500. for tr in trains])
    late = an.fi_curve("tonic", currents, duration=500., dt=0.1, window=(250., 500.))
    assert late[2] == pytest.approx(1000. * np.count_nonzero(trains[2] >= 250.) / 250.)
    with pytest.raises(ValueError):
        an.fi_curve("tonic", [])
    with pytest.raises(ValueError):
        an.fi_curve("no_such_preset", [1.])
