"""Spike-train analysis against hand-computed values, the classifier on the reference trains of the
Naud presets, and the f-I curve runner against the reference solver and the closed-form LIF."""
import json
import math

import numpy as np
import pytest

from ngc_adex import analysis as an
from ngc_adex import from_physical, preset
from ngc_adex.simulate import SimulationResult
from ngc_adex.reference import spike_times


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


# the eight patterns of Naud, Marcille, Clopath & Gerstner (2008), Fig. 4a-h, in the paper's order
# ("tonic spiking", "adapting", "initial burst", "regular bursting", "delayed accelerating",
# "delayed regular bursting", "transient spiking", "irregular spiking"), as snake_case labels
NAUD_FIG4 = ("tonic", "adapting", "initial_burst", "regular_bursting", "delayed_accelerating",
             "delayed_regular_bursting", "transient", "irregular")
# the classifier's four further outcomes (module docstring of ngc_adex.analysis)
OTHER_LABELS = ("silent", "sparse", "accelerating", "delayed")


def test_labels_are_the_published_patterns_and_four_more():
    assert an.NAUD_PATTERNS == NAUD_FIG4
    assert sorted(an.LABELS) == sorted(NAUD_FIG4 + OTHER_LABELS)
    assert all(isinstance(text, str) and len(text) > 10 for text in an.LABELS.values())
    assert sorted(SYNTHETIC) == sorted(NAUD_FIG4 + OTHER_LABELS)  # every label has a synthetic train above
    # each Naud preset must be recognised as its own pattern; Brette & Gerstner's cell adapts (their Fig. 2)
    assert an.EXPECTED_LABELS == {"tonic": "tonic", "adapting": "adapting", "initial_burst": "initial_burst",
                                  "regular_bursting": "regular_bursting",
                                  "delayed_accelerating": "delayed_accelerating",
                                  "delayed_regular_bursting": "delayed_regular_bursting",
                                  "transient": "transient", "irregular": "irregular",
                                  "brette_gerstner_2005": "adapting"}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAUD_FIG4)
def test_classify_reference_train_of_each_naud_preset(name, naud_reference):
    """The classifier on the high-accuracy reference trains (ngc_adex.reference) of the published
    protocol (500 ms, V(0) = E_L, the preset's current): independent of the simulator."""
    assert an.classify(naud_reference[name], 500.) == name


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


def _reference_counts(train, window, margin):
    """Spikes of a reference train in [start, stop], after checking that none lies within ``margin``
    of an edge (where a spike-time error of the simulator could move it across)."""
    start, stop = window
    train = np.asarray(train)
    assert np.all(np.abs(train - start) > margin) and np.all(np.abs(train - stop) > margin), window
    return np.count_nonzero((train >= start) & (train <= stop))


def _assert_trains_match(trains, refs, currents, atol):
    """Same spike count per current, and spike times within ``atol`` ms."""
    assert len(trains) == len(refs)
    for current, train, ref in zip(currents, trains, refs):
        assert len(train) == len(ref), (current, len(train), len(ref))
        if len(ref):
            np.testing.assert_allclose(train, ref, rtol=0, atol=atol)


@pytest.mark.slow
def test_fi_curve_tonic_against_reference():
    """Rates of the tonic preset against the spike counts of the high-accuracy reference solver
    for the same currents and duration, over the whole run and over its second half."""
    currents, duration = [0., 150., 500., 800.], 500.
    refs = [spike_times(dict(preset("tonic"), I=current), duration) for current in currents]
    rates, trains = an.fi_curve("tonic", currents, duration=duration, dt=0.1, return_trains=True)
    assert rates.shape == (4,)
    _assert_trains_match(trains, refs, currents, atol=1e-2)
    expected = [1000. * _reference_counts(ref, (0., duration), 0.05) / duration for ref in refs]
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-9)
    assert expected[0] == expected[1] == 0. and expected[2] > 90.  # below rheobase; 51 spikes at 500 pA
    late = an.fi_curve("tonic", currents, duration=duration, dt=0.1, window=(250., 500.))
    expected_late = [1000. * _reference_counts(ref, (250., 500.), 0.05) / 250. for ref in refs]
    np.testing.assert_allclose(late, expected_late, rtol=0, atol=1e-9)
    assert expected_late[2] != expected[2]  # the window changes the rate (51 spikes in 500 ms, 26 in the last 250)


def lif_spike_times(C, g_L, E_L, V_T, V_reset, current, duration):
    """Closed-form spike times of the leaky integrate-and-fire neuron from V(0) = E_L: the first at
    tau_m ln(RI / (RI - (V_T - E_L))), then one every tau_m ln((RI - (V_r - E_L)) / (RI - (V_T - E_L)))."""
    tau_m, drive = C / g_L, current / g_L
    if drive <= V_T - E_L:
        return np.array([])
    first = tau_m * math.log(drive / (drive - (V_T - E_L)))
    period = tau_m * math.log((drive - (V_reset - E_L)) / (drive - (V_T - E_L)))
    return first + period * np.arange(int((duration - first) // period) + 1)


@pytest.mark.slow
def test_fi_curve_integrate_and_fire_against_closed_form():
    """Delta_T = 0, a = b = 0 (a leaky integrate-and-fire neuron, given as cell keyword arguments):
    rates against the closed-form spike counts, over the whole run and over a window."""
    lif = dict(C=200., g_L=10., E_L=-70., V_T=-50., V_reset=-58.)
    kwargs = from_physical(**lif, Delta_T=0., V_peak=0., a=0., tau_w=100., b=0.)
    currents, duration = [100., 250., 500., 1500.], 500.
    rates, trains = an.fi_curve(kwargs, currents, duration=duration, dt=0.1, return_trains=True)
    exact = [lif_spike_times(**lif, current=current, duration=duration) for current in currents]
    _assert_trains_match(trains, exact, currents, atol=2e-3)
    expected = [1000. * _reference_counts(ref, (0., duration), 0.01) / duration for ref in exact]
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-9)
    assert expected[0] == 0. and expected[1] == 50. and expected[3] > 800.  # 100 pA: below 200 pA rheobase
    window = (250., 500.)
    late = an.fi_curve(kwargs, currents, duration=duration, dt=0.1, window=window)
    expected_late = [1000. * _reference_counts(ref, window, 0.01) / 250. for ref in exact]
    np.testing.assert_allclose(late, expected_late, rtol=0, atol=1e-9)


def test_fi_curve_rejects_bad_input():
    with pytest.raises(ValueError):
        an.fi_curve("tonic", [])
    with pytest.raises(ValueError):
        an.fi_curve("no_such_preset", [1.])
