"""README.md: its Python block runs as written and prints what the comment says; it keeps the commands a
newcomer needs (the main job, the tests, building the docs). The examples that moved to docs/ run in
tests/test_docs.py."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def _readme():
    with open(README) as f:
        return f.read()


@pytest.mark.subprocess
def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    assert len(blocks) >= 1
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "spikes per neuron: [3, 10, 21]" in proc.stdout  # as the block's comment says


def test_readme_keeps_the_newcomers_commands():
    text = _readme()
    assert "pip install . && ngc-adex --out out" in text
    # .ci/run reads the test command from the line after this marker
    assert re.search(r'<!-- test-command -->\n```bash\npip install -e "\.\[dev\]" && python -m pytest', text)
    assert 'pip install -e ".[docs]" && sphinx-build -W docs docs/_build/html' in text
