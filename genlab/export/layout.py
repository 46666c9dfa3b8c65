"""What an export folder holds, by name: one place for the writer and the reader.

    genlab_export.json   the manifest: what was exported from which checkpoint, the sampler defaults, the files
    config.yaml          the run's config, its model node resolved (no run folder needed to rebuild it)
    raw.safetensors      the trained weights (the family's networks, a GAN's critic included)
    ema.safetensors      the moving average of the image network, when the run kept one
    metrics.json         genlab eval's results of the checkpoint, each with its protocol, when it was evaluated
    samples.png          a sample grid of the exported weights
    README.md            the model card
    model.onnx           format=onnx: the one-pass generator as an ONNX graph
"""

from __future__ import annotations

MANIFEST = "genlab_export.json"
CONFIG = "config.yaml"
RAW = "raw.safetensors"
EMA = "ema.safetensors"
METRICS = "metrics.json"
SAMPLES = "samples.png"
CARD = "README.md"
ONNX = "model.onnx"
# what the manifest's "format" says: a reader refuses a folder of a later layout by this number
FORMAT = "genlab-export"
VERSION = 1

# state_dict prefixes of the loop's averages (genlab/modules/base.py): the EMA goes to ema.safetensors; EDM2's
# post-hoc averages are training state (their snapshots in the run folder rebuild any length), not exported
EMA_PREFIX = "ema."
POSTHOC_PREFIX = "posthoc_ema."

# files whose name says they are pickles (or torch.save's zip of pickles), which genlab never writes into an export
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".joblib", ".npy", ".npz", ".dill")
# what a pickle (protocol 2 and later) or torch.save's zip begins with
PICKLE_STARTS = (b"\x80", b"PK\x03\x04")
# files of genlab's own formats, whose first bytes may look like the above by chance (a safetensors header's length)
OWN_SUFFIXES = (".safetensors", ".onnx", ".png", ".json", ".yaml", ".md")
