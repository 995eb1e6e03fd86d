"""Figures for self-contained HTML: a matplotlib figure as a PNG data URI."""
from __future__ import annotations

import base64
import io


def figure_png(fig, dpi: int = 90) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
