"""Where a result came from: the git commit, the library versions, the machine and its thread count."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def commit() -> str:
    """The short git commit of the sonokit checkout (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True, stderr=subprocess.DEVNULL,
                                      cwd=Path(__file__).parent, timeout=10).strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "."], cwd=Path(__file__).parent,
                               stderr=subprocess.DEVNULL, timeout=10).returncode
        return out + ("+dirty" if dirty == 1 else "")
    except Exception:
        return "unknown"


def machine() -> dict:
    """Platform, Python and torch versions, the device, and torch's CPU thread count."""
    import torch

    from . import __version__

    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "sonokit": __version__, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads()}
