"""Regenerates the documentation's figures (docs/images/*.png) from the examples' own scripts.

Each example in FIGURES runs in a subprocess with ``NGC_ADEX_OUT`` set to a temporary folder; the PNGs
it writes there are downscaled to at most ``MAX_WIDTH`` pixels wide, reduced to a palette and saved
under docs/images/ with the name the pages use. Every committed figure stays below ``MAX_BYTES``.

Run from the repository root (the examples take about a minute together on two cores):

    python docs/make_figures.py            # every figure
    python docs/make_figures.py 09_rsfs    # only the examples whose name contains one of the words
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
IMAGES = Path(__file__).resolve().parent / "images"
MAX_WIDTH = 900  # px
MAX_BYTES = 150_000
PALETTES = (128, 64, 32)  # colours of a committed PNG: the most that keep it below MAX_BYTES

#: example script -> [(PNG it writes into $NGC_ADEX_OUT, name under docs/images)]
FIGURES = {
    "01_firing_patterns.py": [("01_firing_patterns.png", "firing_patterns.png")],
    "02_fi_curve.py": [("02_fi_curve.png", "fi_curve.png")],
    "03_phase_plane.py": [("03_phase_plane.png", "phase_plane.png")],
    "08_conductance_neuron.py": [("conductance_neuron.png", "conductance_neuron.png")],
    "09_rsfs_network.py": [("09_rsfs_network.png", "rsfs_network.png")],
}


def shrink(src, dst):
    """``src`` downscaled to ``MAX_WIDTH`` and reduced to a palette (the largest of ``PALETTES`` that
    keeps it below ``MAX_BYTES``), written to ``dst``; its size in bytes."""
    from PIL import Image  # installed with matplotlib
    img = Image.open(src).convert("RGB")
    if img.width > MAX_WIDTH:
        img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)), Image.Resampling.LANCZOS)
    for colors in PALETTES:
        img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        if dst.stat().st_size < MAX_BYTES:
            break
    return dst.stat().st_size


def main(words=()):
    scripts = [s for s in FIGURES if not words or any(w in s for w in words)]
    if not scripts:
        sys.exit(f"no example matches {' '.join(words)}; known: {' '.join(FIGURES)}")
    IMAGES.mkdir(exist_ok=True)
    too_big = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            out = Path(tmp) / Path(script).stem
            env = dict(os.environ, MPLBACKEND="Agg", NGC_ADEX_OUT=str(out))
            print(f"== {script}", flush=True)
            subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp, env=env, check=True)
            for written, name in FIGURES[script]:
                size = shrink(out / written, IMAGES / name)
                print(f"docs/images/{name}: {size / 1000:.0f} KB")
                if size >= MAX_BYTES:
                    too_big.append(name)
    if too_big:
        sys.exit(f"figures of {MAX_BYTES // 1000} KB or more: {', '.join(too_big)} (lower MAX_WIDTH)")


if __name__ == "__main__":
    main(sys.argv[1:])
