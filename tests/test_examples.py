"""Every script in examples/ runs (all in parallel subprocesses), writes
non-trivial PNGs into $NGC_ADEX_OUT and prints what it claims."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from ngc_adex import NAUD_PATTERNS

pytestmark = pytest.mark.subprocess  # every example runs in its own Python process

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: script -> PNG files it must write
SCRIPTS = {
    "01_firing_patterns.py": ["01_firing_patterns.png"],
    "02_fi_curve.py": ["02_fi_curve.png"],
    "03_phase_plane.py": ["03_phase_plane.png"],
    "04_ei_circuit.py": ["04_ei_circuit.png"],
    "05_stdp.py": ["05_stdp.png"],
    "06_modules_save_load.py": ["06_modules_save_load.png"],
    "07_sharded_population.py": [],  # prints throughput and checks; no figure
    "08_conductance_neuron.py": ["conductance_neuron.png"],
    "09_rsfs_network.py": ["09_rsfs_network.png"],
}
TIMEOUT = 600  # s, for all of them together


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts every example at once; returns script -> (returncode, stdout, stderr, out dir)."""
    root = tmp_path_factory.mktemp("examples")
    procs = {}
    for script in SCRIPTS:
        out = root / Path(script).stem
        env = dict(os.environ, MPLBACKEND="Agg", NGC_ADEX_OUT=str(out))
        procs[script] = (subprocess.Popen([sys.executable, str(EXAMPLES / script)], cwd=root, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    deadline = time.monotonic() + TIMEOUT
    results = {}
    for script, (proc, out) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(1., deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr += f"\n[killed after {TIMEOUT} s]"
        results[script] = (proc.returncode, stdout, stderr, out)
    return results


def finished(runs, script):
    rc, stdout, stderr, out = runs[script]
    assert rc == 0, f"{script} failed:\n{stderr[-3000:]}"
    return stdout, out


def assert_image(path):
    assert path.is_file(), f"missing {path}"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 250 and img.shape[1] >= 400, img.shape
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.02, "image is (nearly) constant"
    assert len(np.unique(rgb.reshape(-1, 3)[::7], axis=0)) > 20, "image has hardly any colours"


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs_and_writes_pngs(runs, script):
    stdout, out = finished(runs, script)
    for png in SCRIPTS[script]:
        assert_image(out / png)
        assert f"wrote {out / png}" in stdout


def test_01_firing_patterns(runs):
    stdout, _ = finished(runs, "01_firing_patterns.py")
    assert "8/8 patterns classified as their name" in stdout
    for name in NAUD_PATTERNS:
        assert re.search(rf"^{name}\s+\d+\s+\S+\s+{name}$", stdout, re.M), name


def test_02_fi_curve(runs):
    stdout, _ = finished(runs, "02_fi_curve.py")
    rates = {m[0]: (float(m[1]), float(m[2]), float(m[3])) for m in re.findall(
        r"^(\w+)\s+first spikes at ([\d.]+) pA; at 1000 pA: mean ([\d.]+) Hz, steady ([\d.]+) Hz", stdout, re.M)}
    assert set(rates) == {"tonic", "adapting", "brette_gerstner_2005"}
    assert rates["tonic"][1] > rates["adapting"][1] > 0
    assert rates["adapting"][2] < rates["adapting"][1]  # adaptation: steady rate below the mean rate
    assert rates["brette_gerstner_2005"][0] > rates["tonic"][0]  # higher rheobase


def test_03_phase_plane(runs):
    stdout, _ = finished(runs, "03_phase_plane.py")
    assert "regular_bursting: I = 210 pA" in stdout
    m = re.search(r"(\d+) spikes in (\d+) bursts", stdout)
    assert m and int(m.group(2)) >= 3 and int(m.group(1)) > int(m.group(2))
    assert "pattern: regular_bursting" in stdout


def test_04_ei_circuit(runs):
    stdout, _ = finished(runs, "04_ei_circuit.py")
    m = re.search(r"E: 80 AdEx neurons, mean rate ([\d.]+) Hz; I: 20 LIF neurons, mean rate ([\d.]+) Hz", stdout)
    assert m, stdout
    assert 0.5 < float(m.group(1)) < 100. and 0.5 < float(m.group(2)) < 300.


def test_05_stdp(runs):
    stdout, _ = finished(runs, "05_stdp.py")
    assert re.search(r"postsynaptic AdEx neuron: [1-9]\d* spikes", stdout)
    corr = re.search(r"correlated inputs: ([\d.]+) -> ([\d.]+)", stdout)
    ind = re.search(r"independent inputs: ([\d.]+) -> ([\d.]+)", stdout)
    assert corr and ind
    assert float(corr.group(2)) != float(corr.group(1))  # the weights did learn
    assert float(corr.group(2)) > float(ind.group(2))   # correlated inputs end stronger


def test_06_modules_save_load(runs):
    stdout, _ = finished(runs, "06_modules_save_load.py")
    assert "adex -> ngc_adex" in stdout and "AdExCell" in stdout
    assert "identical: True" in stdout


def test_08_conductance_neuron(runs):
    stdout, _ = finished(runs, "08_conductance_neuron.py")
    m = re.search(r"^(\d+) spikes in 1000 ms: ([\d.]+) Hz; mean g_exc ([\d.]+) nS, g_inh ([\d.]+) nS$", stdout, re.M)
    assert m, stdout
    assert int(m.group(1)) > 0 and abs(float(m.group(2)) - int(m.group(1))) < 0.05
    # 200 cells x 10 Hz x 2.5 nS x 5 ms = 25 nS; 50 x 10 Hz x 3 nS x 10 ms = 15 nS (Campbell's theorem)
    assert 20. < float(m.group(3)) < 30. and 12. < float(m.group(4)) < 19.


def test_09_rsfs_network(runs):
    """The asynchronous irregular regime of the published network: rates and CV within 10% (CV: 0.1)
    of Brian2's and NEST's on the same network (Brian2 2.9 heun: RS 8.6-8.8 Hz, FS 24.0-24.6 Hz, CV
    0.87; NEST 3.10 aeif_cond_exp: 8.5-8.9 / 23.9-24.7 Hz, CV 0.85; benchmarks/network.py)."""
    stdout, _ = finished(runs, "09_rsfs_network.py")
    rates = dict(re.findall(r"^(RS|FS): ([\d.]+) Hz", stdout, re.M))
    cv = re.search(r"^RS: mean ISI CV ([\d.]+) over (\d+)", stdout, re.M)
    assert set(rates) == {"RS", "FS"} and cv, stdout
    assert 0.9 * 8.5 <= float(rates["RS"]) <= 1.1 * 8.8, rates
    assert 0.9 * 23.9 <= float(rates["FS"]) <= 1.1 * 24.7, rates
    assert 0.75 <= float(cv.group(1)) <= 0.97 and int(cv.group(2)) >= 100, cv.group(0)
