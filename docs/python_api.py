# %% [markdown]
# # genlab from Python
#
# Load a trained run, make images, read what the run recorded, and export it as a folder to share. This file is
# both a script (`python docs/python_api.py`) and a notebook in jupytext's percent format: each `# %%` starts a
# cell (`jupytext --to notebook docs/python_api.py` makes an .ipynb). `GENLAB_EXAMPLE_RUN` names the run folder;
# without it, the newest training run under outputs/ (`make train` makes one in outputs/quickstart/runs in about a
# minute and a half; `genlab train` in outputs/train/runs).
# docs/python_api.md says what each call does; tests/test_api.py runs this file.

# %%
import os
from pathlib import Path

import genlab

trained = sorted([*Path("outputs/train/runs").glob("*"), *Path("outputs/quickstart/runs").glob("*")], key=lambda p: p.name)
folder = os.environ.get("GENLAB_EXAMPLE_RUN") or (trained[-1] if trained else None)
if folder is None:
    raise SystemExit("no run under outputs/train/runs or outputs/quickstart/runs: run `make train` first, or set"
                     " GENLAB_EXAMPLE_RUN to a run folder")
run = genlab.load(folder)  # checkpoints/last.ckpt; checkpoint="best", device="cuda", ema=False, ... choose others
print(run)

# %% [markdown]
# Images in [-1, 1], as `genlab sample` makes them for the same seed (and sampler options, e.g. `steps=20` for a
# diffusion run), bit for bit. A conditional run takes the class of each image.

# %%
images = run.sample(16, seed=0)
if run.num_classes:
    threes = run.sample(8, labels=3, seed=0)
    print("eight images of class 3:", tuple(threes.shape))
raw = run.sample(16, seed=0, ema=False)  # the raw weights, where the run kept an EMA
print(tuple(images.shape), "EMA and raw weights differ:", not images.equal(raw))

# %%
from torchvision.utils import save_image

save_image(images, "python_api_samples.png", nrow=4, normalize=True, value_range=(-1, 1))

# %% [markdown]
# What the run recorded: its config, its summary.json, and genlab eval's results of this checkpoint, each with its
# protocol (`run.evaluate(n_samples=1000)` measures anew, as `genlab eval` would).

# %%
print(run.config.model._target_, "at", run.summary.get("generator_steps"), "generator steps")
for entry, results in run.metrics.items():
    print(entry, {name: round(value, 3) for name, value in results["metrics"].items()})

# %% [markdown]
# An export is a folder that needs no run folder: safetensors weights, the config, a sample grid and a model card
# (README.md). `genlab.load` reads it back through the same checks, to the same images.

# %%
exported = Path("python_api_export")
if not exported.exists():  # an export never writes over a folder that holds files
    run.export(exported, n=16, nrow=4)
again = genlab.load(exported).sample(16, seed=0)
print("the export samples the same images:", again.equal(images))
