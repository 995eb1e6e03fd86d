"""`import sonokit` and every `--help` load no torch, Lightning, MONAI, timm or deepinv (fast start)."""
import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "monai", "timm", "deepinv", "matplotlib")
PROBE = """
import contextlib, io, json, sys
sys.argv = ["sonokit", *json.loads(sys.argv[1])]
import sonokit
from sonokit.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps([m for m in HEAVY if m in sys.modules]))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "segment", "--help"], ["train", "classify", "--help"],
                                  ["pretrain", "--help"], ["evaluate", "--help"], ["segment", "--help"],
                                  ["enhance", "--help"], ["data", "split", "--help"], ["models", "--help"],
                                  ["experiment", "ssl-grid", "--help"], ["experiment", "ablation", "--help"]])
def test_help_imports_nothing_heavy(argv):
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    r = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_import_sonokit_is_lazy():
    code = ("import sys, sonokit; before = [m for m in ('torch', 'lightning') if m in sys.modules]; "
            "sonokit.load_config; after_config = 'torch' in sys.modules; print(before, after_config)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[] False", r.stdout + r.stderr
