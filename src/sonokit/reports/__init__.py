"""Results -> tables (markdown/HTML) and matplotlib figures; one self-contained HTML report per run folder."""
from .html import build_report
from .tables import fmt_mean_std, markdown_table

__all__ = ["build_report", "markdown_table", "fmt_mean_std"]
