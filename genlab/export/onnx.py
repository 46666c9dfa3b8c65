"""`genlab export format=onnx`: a one-pass generator (a GAN's generator, a VAE's decoder, a few-step family at one
step) as an ONNX graph, run by onnxruntime on seeded noise and compared with torch's images before it is kept.

The graph is the family's own `decode` (noise [and class labels] to images in [-1, 1]) around its image network,
with the weights that sample by default (the EMA when the run kept one, its standing batch norm statistics
measured first), exported by torch's `torch.export`-based exporter with a dynamic batch size. A few-step family
(MeanFlow, reflow, consistency training and distillation) is exported as its one-step sampler (`steps=1`,
reflow's with Euler): one network evaluation, the sampler's times written into the graph. A graph whose batch
size came out fixed (a sampler that sizes a tensor by `len(x)`, a Python int when traced) is refused, as are diffusion
and flow matching (many steps) and the image-to-image families. onnx, onnxscript and onnxruntime are the optional
extra `genlab[onnx]`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from torch import Tensor, nn

from genlab.errors import ConfigError

if TYPE_CHECKING:
    from genlab.api.run import Run

# the largest difference, in [-1, 1] pixel units, between onnxruntime's images and torch's that an export keeps
# (float32 convolutions summed in another order differ by ~1e-6; a wrong graph by far more)
TOLERANCE = 1e-4
# images compared, drawn from the export's seed
CHECKED_IMAGES = 8
OPSET = 18
PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def one_pass_options(run: Run) -> dict[str, Any] | None:
    """The sampler options under which the family makes an image in one network evaluation from noise: none for a
    one-pass family, steps=1 for a few-step one (reflow: Euler's); None for the others."""
    from genlab.families.reflow import Reflow

    family, options = run.family, run.family.sampler_options()
    if run.translates:
        return None
    if not options:
        return {}
    if isinstance(family, Reflow):
        chosen: dict[str, Any] = {"method": "euler", "steps": 1}
    elif "steps" in options and "method" not in options:  # MeanFlow, consistency training and distillation
        chosen = {"steps": 1}
    else:
        return None
    return chosen if family.sampler_settings(chosen).get("evaluations") == 1 else None


def check_onnx_export(run: Run) -> dict[str, Any]:
    """The sampler options of the graph (one_pass_options); a family that is not one pass of noise, or a missing
    package, refused in one line before anything is written."""
    family = run.family
    options = one_pass_options(run)
    if options is None:
        kind = "makes images from input images" if run.translates else \
            f"samples in many steps (its sampler options: {', '.join(family.sampler_options())})"
        raise ConfigError(f"format=onnx: {type(family).__name__} {kind}, and ONNX export covers generators of one"
                          " network pass (GANs, VAEs, the few-step families at one step): use format=safetensors")
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"format=onnx needs the package(s) {', '.join(missing)}: pip install 'genlab[onnx]'"
                          " (or pip install onnx onnxscript onnxruntime)")
    return options


class OnePass(nn.Module):
    """noise (and labels) -> images: the family's decode under `options`, with its image network as this module's
    only weights."""

    def __init__(self, run: Run, options: dict[str, Any]) -> None:
        super().__init__()
        self.network = run.family.image_network()  # the same module the family's decode calls
        self.decode = run.family.decode
        self.conditional = run.family.conditional
        self.options = dict(options)

    def forward(self, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decode(noise, labels if self.conditional else None, **self.options)


def write_onnx(run: Run, path: Path, seed: int) -> dict[str, Any]:
    """Write the graph to `path`, check it with onnxruntime against torch on seeded noise, and return what the
    manifest records of it (inputs, weights, sampler options, the largest difference measured)."""
    import torch

    options = check_onnx_export(run)
    family = run.family
    noise = family.sample_noise(CHECKED_IMAGES, torch.Generator().manual_seed(seed))  # on the run's device
    labels = family.cycled_labels(CHECKED_IMAGES)
    args = (noise,) if labels is None else (noise, labels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes: tuple[Any, ...] = ({0: batch},) if labels is None else ({0: batch}, {0: batch})
    names = ["noise"] if labels is None else ["noise", "labels"]
    graph = OnePass(run, options).eval()
    with torch.no_grad(), run.model.averaged(), quiet_exporter():  # the weights that sample by default
        torch.onnx.export(graph, args, str(path), input_names=names, output_names=["images"], opset_version=OPSET,
                          dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False)
        expected = graph(*args)
    difference = max_difference_with_onnxruntime(path, dict(zip(names, args)), expected)
    if not accepts_another_batch_size(path, names, family):
        path.unlink(missing_ok=True)
        raise ConfigError(f"format=onnx: {type(family).__name__}'s graph came out with a fixed batch size of"
                          f" {CHECKED_IMAGES} (its sampler's code fixes it when traced): the graph is not kept; use"
                          " format=safetensors")
    if not difference <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise ConfigError(f"format=onnx: onnxruntime's images differ from torch's by up to {difference:.3g}, more than"
                          f" {TOLERANCE:g}: the graph is not kept; use format=safetensors")
    shape = list(family.noise_shape)
    inputs = {"noise": f"float32 (batch, {', '.join(str(s) for s in shape)})"}
    if labels is not None:
        inputs["labels"] = f"int64 (batch,), classes 0 to {family.num_classes - 1}"
    return {"file": path.name, "weights": run.weights, "sampler": options, "opset": OPSET, "inputs": inputs,
            "noise_shape": shape,
            "image_shape": list(expected.shape[1:]), "tolerance": TOLERANCE, "max_abs_difference": difference,
            "checked_images": CHECKED_IMAGES, "seed": seed}


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's and its optimizer's INFO lines (one per graph rewrite), its note that the inputs share one
    batch axis, and the graph it writes to stderr when a few-step sampler's times send it to its fallback
    strategy, kept out of genlab's output: they say nothing about the export a user asked for (the graph is
    checked with onnxruntime after)."""
    quiet = {"onnxscript": logging.WARNING, "onnx_ir": logging.WARNING, "torch.onnx": logging.WARNING,
             "torch.export": logging.WARNING,
             # a sampler's times read from a tensor: traced as constants, with a warning that dumps the whole graph
             "torch.fx.experimental.symbolic_shapes": logging.ERROR}
    loggers = [logging.getLogger(name) for name in quiet]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.filterwarnings("ignore", message=r".*The axis name: .* will not be used")
        for logger in loggers:
            logger.setLevel(quiet[logger.name])
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def accepts_another_batch_size(path: Path, names: list[str], family: Any) -> bool:
    """Whether onnxruntime runs the graph on a batch of another size than the traced one."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"noise": np.zeros((3, *family.noise_shape), dtype=np.float32), "labels": np.zeros(3, dtype=np.int64)}
    try:
        session.run(["images"], {name: feeds[name] for name in names})
    except Exception:  # onnxruntime's InvalidArgument: "Got invalid dimensions for input"
        return False
    return True


def max_difference_with_onnxruntime(path: Path, feeds: dict[str, Tensor], expected: Tensor) -> float:
    """onnxruntime's images for `feeds` against torch's `expected`: the largest absolute difference."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (images,) = session.run(["images"], {name: value.cpu().numpy() for name, value in feeds.items()})
    if images.shape != tuple(expected.shape):
        return float("inf")
    return float(np.abs(images - expected.cpu().numpy()).max())
