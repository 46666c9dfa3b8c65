"""summary.json in every run folder: what ran, how it ended, its final metrics.

`genlab report` reads these files; a failed sweep job leaves one too, with the error and the
overrides that re-run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from genlab.run.atomic import atomic_write_json

FILENAME = "summary.json"


def write_summary(
    output_dir: str | Path,
    status: str,
    metrics: Mapping[str, Any] | None = None,
    optimized_metric: str | None = None,
    error: str | None = None,
    overrides: Sequence[str] = (),
    **extra: Any,
) -> Path:
    """Write (or overwrite) <output_dir>/summary.json: the status, the command-line `overrides` that made the run
    (what `genlab report` tells runs apart by), its final metrics (tensors become floats)."""
    path = Path(output_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "status": status,
        "overrides": list(overrides),
        "optimized_metric": optimized_metric,
        "metrics": {name: float(value) for name, value in (metrics or {}).items()},
        "error": error,
        **extra,
    }
    return atomic_write_json(path, summary)


def read_summary(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
