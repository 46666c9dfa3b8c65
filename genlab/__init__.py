"""genlab: train and compare generative image models from the command line, and use them from Python.

    import genlab
    run = genlab.load("outputs/train/runs/<date>")   # a run folder, a checkpoint, or a `genlab export` folder
    images = run.sample(16, seed=0)                  # as `genlab sample` makes them, bit for bit

Importing genlab loads no torch: a run does, when it is loaded (genlab/api/).
"""

from genlab.api import Run, load

__version__ = "0.1.0"
__all__ = ["Run", "load", "__version__"]
