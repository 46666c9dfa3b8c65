"""genlab's Python API: a trained run, a checkpoint or an exported folder as one object a notebook uses.

    import genlab
    run = genlab.load("outputs/train/runs/<date>")      # or <run>/checkpoints/best.ckpt, or an export folder
    images = run.sample(16, seed=0)                     # (16, C, H, W) in [-1, 1]

`genlab sample` and `genlab eval` load and sample through the same functions (`loading.py`, the `Run` of
`run.py`), so `run.sample(...)` gives their images bit for bit. Loading goes through the CLI's checked road
(genlab/run/load.py, genlab/run/trust.py): no pickles, no callable genlab does not ship. These modules import
only the standard library when imported: torch loads when a run does, so `import genlab` stays cheap.
"""

from __future__ import annotations

from genlab.api.loading import load
from genlab.api.run import Run

__all__ = ["load", "Run"]
