"""The README's Python quick start runs as written (in a temporary folder)."""
import re

import numpy as np

from .conftest import REPO


def _python_quick_start() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_quick_start_runs(tmp_path, monkeypatch, capsys):
    code = _python_quick_start()
    assert "sonokit.fit(" in code and "sonokit.evaluate(" in code and "sonokit.predict(" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    res, prob = scope["res"], scope["prob"]
    assert res["n"] > 0 and 0 <= res["aggregate"]["dice"]["mean"] <= 1
    assert prob.shape == (96, 96) and np.isfinite(prob).all()
    assert (tmp_path / "runs" / "quickstart" / "checkpoints" / "best.ckpt").exists()
    assert "'mean'" in capsys.readouterr().out
