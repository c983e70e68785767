"""The ngc-adex command line: the gallery job (the real check of analysis.classify
on the eight Naud presets), run, fi, --help and one-line errors."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image as mpimg

from ngc_adex import NAUD_PATTERNS as NAUD  # the eight Naud et al. (2008) patterns, Fig. 4a-h
from ngc_adex.cli import main


def call(argv):
    """main(argv) in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_image(path, min_h=200, min_w=300):
    assert os.path.isfile(path), path
    img = mpimg.imread(path)
    assert img.shape[0] >= min_h and img.shape[1] >= min_w, img.shape
    assert float(np.std(img[..., :3])) > 0.01  # not a blank canvas


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    rc, stdout, stderr = call(["--out", str(out)])  # no subcommand: gallery
    return out, rc, stdout, stderr


@pytest.mark.slow
def test_gallery_writes_files(gallery):
    out, rc, stdout, stderr = gallery
    assert rc == 0, stderr
    assert_image(out / "gallery.png", 600, 800)
    doc = json.loads((out / "patterns.json").read_text())
    assert list(doc["patterns"]) == list(NAUD)
    assert doc["protocol"]["method"] == "precise" and doc["protocol"]["dt_ms"] == 0.1
    for name, p in doc["patterns"].items():
        assert p["n_spikes"] == len(p["spike_times_ms"])
        assert {"spike_times_ms", "n_spikes", "adaptation_index", "label", "expected", "match"} <= set(p)
    with open(out / "patterns.csv") as fp:
        rows = list(csv.DictReader(fp))
    assert [r["pattern"] for r in rows] == list(NAUD)
    assert "8/8 patterns classified as expected" in stdout
    for name in NAUD:
        assert name in stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", NAUD)
def test_each_pattern_classified_as_expected(gallery, name):
    """Each preset, simulated with its published stimulus, gets its own pattern's name as label."""
    out = gallery[0]
    p = json.loads((out / "patterns.json").read_text())["patterns"][name]
    assert p["label"] == name, (name, p["label"], p["features"])
    assert p["expected"] == name
    assert p["match"] is True


@pytest.mark.slow
def test_gallery_spike_counts_plausible(gallery):
    pats = json.loads((gallery[0] / "patterns.json").read_text())["patterns"]
    assert pats["transient"]["n_spikes"] == 1
    assert pats["tonic"]["n_spikes"] > 40
    assert pats["adapting"]["adaptation_index"] > 0.05
    assert pats["delayed_accelerating"]["adaptation_index"] < 0


@pytest.mark.slow
def test_run_npz_with_plot(tmp_path):
    rc, stdout, stderr = call(["run", "--preset", "regular_bursting", "--duration", "300", "--plot",
                               "--out", str(tmp_path)])
    assert rc == 0, stderr
    data = np.load(tmp_path / "run.npz")
    assert data["t"].shape == data["v"].shape == data["w"].shape == (3000,)
    assert data["spike_times"].size >= 5 and float(data["current"]) == 210.
    assert json.loads(str(data["params"]))["b"] == 100.
    assert_image(tmp_path / "run.png")
    assert_image(tmp_path / "run_phase.png")
    assert "preset regular_bursting" in stdout and "pattern: regular_bursting" in stdout


def test_run_custom_parameters_csv(tmp_path):
    rc, stdout, stderr = call(["run", "--C", "200", "--gL", "10", "--EL", "-70", "--VT", "-50", "--DT", "2",
                               "--Vr", "-58", "--Vpeak", "0", "--a", "2", "--tau-w", "30", "--b", "0",
                               "--current", "500", "--duration", "100", "--dt", "0.1", "--method", "rk4",
                               "--format", "csv", "--out", str(tmp_path)])
    assert rc == 0, stderr
    trace = np.loadtxt(tmp_path / "run_trace.csv", delimiter=",", skiprows=1)
    assert trace.shape == (1000, 3)
    assert np.all(trace[:, 1] <= 0.)  # v never above V_peak
    spikes = np.loadtxt(tmp_path / "run_spikes.csv", skiprows=1, ndmin=1)
    assert 8 <= spikes.size <= 11  # the tonic set: first spike at 14 ms, then every ~9.5 ms
    assert "custom parameters" in stdout and "I = 500 pA" in stdout


@pytest.mark.slow
def test_fi(tmp_path):
    rc, stdout, stderr = call(["fi", "--preset", "tonic", "adapting", "--i-min", "0", "--i-max", "600",
                               "--n-points", "4", "--duration", "200", "--method", "rk4",
                               "--out", str(tmp_path)])
    assert rc == 0, stderr
    with open(tmp_path / "fi.csv") as fp:
        header = fp.readline().strip()
    assert header == "current_pA,tonic_hz,adapting_hz"
    table = np.loadtxt(tmp_path / "fi.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 0], [0., 200., 400., 600.])
    assert table[0, 1] == 0. and table[-1, 1] > table[-1, 2] > 0.  # adaptation lowers the rate
    assert np.all(np.diff(table[:, 1]) >= 0)
    assert_image(tmp_path / "fi.png")
    assert "wrote" in stdout


@pytest.mark.parametrize("argv, words", [
    (["--help"], ["gallery", "run", "fi"]),
    (["gallery", "--help"], ["--out", "--dt"]),
    (["run", "--help"], ["--preset", "--tau-w", "--current", "--format", "--plot"]),
    (["fi", "--help"], ["--preset", "--currents", "--n-points"]),
])
def test_help(argv, words):
    rc, stdout, _ = call(argv)
    assert rc == 0
    for word in words:
        assert word in stdout


@pytest.mark.parametrize("argv", [
    ["run", "--preset", "no_such_preset"],
    ["run", "--dt", "-0.1"],
    ["run", "--duration", "0"],
    ["run", "--tau-w", "-5"],            # AdExCell's ValueError
    ["run", "--DT", "-1"],               # v_sharpness below 0
    ["run", "--C", "0"],                 # from_physical's ValueError
    ["run", "--current", "abc"],
    ["run", "--method", "leapfrog"],
    ["fi", "--n-points", "0"],
    ["fi", "--i-min", "10", "--i-max", "5"],
    ["gallery", "--dt", "nan"],
    ["--no-such-option"],
])
def test_bad_arguments_one_line_exit_2(argv, tmp_path):
    rc, stdout, stderr = call(argv + ["--out", str(tmp_path / "o")])
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ngc-adex: error: "), stderr
    assert "Traceback" not in stderr


def run_module(*args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "ngc_adex.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.subprocess
def test_subprocess_bad_argument(tmp_path):
    proc = run_module("run", "--tau-w", "-1", "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("ngc-adex: error: tau_w") and "Traceback" not in proc.stderr


@pytest.mark.subprocess
def test_subprocess_help(tmp_path):
    """ngcsimlib parses sys.argv when ngclearn is imported; our --help must still reach our parser."""
    proc = run_module("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "gallery" in proc.stdout and "ngc-adex" in proc.stdout
