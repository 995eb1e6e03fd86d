"""Small table helpers shared by reports and benchmarks."""
from __future__ import annotations

import html
import math


def fmt_mean_std(mean: float, std: float, digits: int = 3, *, n: int | None = None) -> str:
    """``"0.812 ± 0.031"``; with ``n = 1`` (a single value, whose std says nothing) ``"0.812 (n = 1)"``.

    ``n`` is the number of values the mean is over; leave it out where it is not known (the std is then
    always shown). A missing or NaN mean is ``"n/a"``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if n == 1:
        return f"{mean:.{digits}f} (n = 1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
