"""The documentation (docs/): it builds with warnings as errors, every page's Python blocks run in order
and print the output the page shows after them, and its figures are the examples' own, committed small."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: the pages, as Sphinx sees them (docs/_snippets holds tables that pages include)
PAGES = sorted(p for p in DOCS.rglob("*") if p.suffix in (".md", ".rst")
               and not {"_build", "_snippets"} & set(p.relative_to(DOCS).parts))
TUTORIALS = sorted(p for p in PAGES if p.parent.name == "tutorials" and p.suffix == ".md")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def fenced_blocks(text):
    """[(language, body, start, end)] of the fenced blocks of a Markdown page, in order."""
    return [(m.group(1).strip(), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]


def code_and_output(page):
    """(the page's Python blocks, the output lines they must print): the lines of each ``text`` block
    that directly follows a Python block, in order."""
    text = page.read_text()
    blocks = fenced_blocks(text)
    code, expected = [], []
    for i, (lang, body, _, end) in enumerate(blocks):
        if lang != "python":
            continue
        code.append(body)
        if i + 1 < len(blocks):
            next_lang, next_body, next_start, _ = blocks[i + 1]
            if next_lang == "text" and not text[end:next_start].strip():
                expected += [line.rstrip() for line in next_body.splitlines() if line.strip()]
    return code, expected


PAGES_WITH_CODE = [p for p in PAGES if p.suffix == ".md" and code_and_output(p)[0]]


def test_every_tutorial_has_code_and_its_output():
    assert {p.stem for p in TUTORIALS} >= {"single_neuron", "dropin", "conductance_neuron", "rsfs_network",
                                           "learning"}
    for page in TUTORIALS:
        code, expected = code_and_output(page)
        assert len(code) >= 2 and len(expected) >= 2, page.name


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs_and_prints_what_the_page_shows(page, tmp_path):
    """The page's Python blocks, in order, as one script in a fresh process in an empty folder: it
    exits 0 and prints every line of the page's output blocks, in the page's order."""
    code, expected = code_and_output(page)
    script = tmp_path / "page.py"
    script.write_text("\n".join(code))
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line.rstrip() for line in proc.stdout.splitlines()]
    at = 0
    for line in expected:
        assert line in printed[at:], f"{page.name}: the page shows {line!r}; the code printed:\n{proc.stdout}"
        at = printed.index(line, at) + 1


@pytest.mark.slow
@pytest.mark.subprocess
def test_sphinx_build_with_warnings_as_errors(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-b", "html", "-q", str(DOCS), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in PAGES:
        assert (out / page.relative_to(DOCS).with_suffix(".html")).is_file(), page
    api = (out / "source" / "api.html").read_text()
    for name in ("ngc_adex.cell.AdExCell", "ngc_adex.projection.SparseProjection", "ngc_adex.networks.build_rsfs",
                 "ngc_adex.numerics.trajectory.simulate_params", "ngc_adex.numerics.step.advance"):
        assert f'id="{name}"' in api, name  # autodoc documented it from its docstring
    cell = (out / "modeling" / "adex_cell.html").read_text()
    assert 'class="math' in cell  # the equations
    cell = re.sub(r"<[^>]+>", "", cell)
    assert "refract_time=0.0" in cell  # the constructor's own signature, not ngcsimlib's wrapper's
    assert "0.00016" in cell  # the included accuracy table
    for image in (DOCS / "images").glob("*.png"):
        assert (out / "_images" / image.name).is_file(), image.name


def _make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_come_from_the_examples_and_are_small():
    made = {name for outputs in _make_figures().FIGURES.values() for _, name in outputs}
    committed = {p.name for p in (DOCS / "images").glob("*.png")}
    assert committed == made  # every committed figure is regenerated by docs/make_figures.py
    shown = set()
    for page in PAGES:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} shows {target}, which does not exist"
            shown.add(path.name)
    assert shown == committed  # every figure is shown, none is stale
    for name in committed:
        assert (DOCS / "images" / name).stat().st_size < 150_000, name
    for script in _make_figures().FIGURES:
        assert (ROOT / "examples" / script).is_file(), script
