"""How genlab's reports show results to people: a number as a table cell, a figure as a PNG.

Shared by `genlab report`'s table of runs (genlab/commands/report.py) and its section on an Optuna
study (genlab/search/study_report.py), so both read alike.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def format_value(value: float | None, digits: int = 4) -> str:
    """A table cell: `digits` significant digits, empty for a missing or NaN value."""
    return "" if value is None or math.isnan(value) else f"{value:.{digits}g}"


def save_figure(figure: Any, axes: Any, path: Path, legend_size: int, legend_title: str | None = None,
                legend_outside: bool = False) -> Path:
    """Legend, layout, a PNG at the report's resolution, and the figure closed (plots of runs and of studies).

    `legend_outside`: the legend right of the axes, where no number of runs can hide a curve (the PNG widens
    to hold it); else where it covers least."""
    import matplotlib.pyplot as plt

    if legend_outside:
        axes.legend(fontsize=legend_size, title=legend_title, title_fontsize=legend_size, loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        axes.legend(fontsize=legend_size, title=legend_title, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight" if legend_outside else None)
    plt.close(figure)
    return path
