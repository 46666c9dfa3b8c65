"""A loaded run: its config, its trained model, its images, its metrics. genlab/api/loading.py makes one.

`sample` and `translate` are the family's sampling (genlab/families/base.py) through the run's loop, with its
EMA swapped in (genlab/modules/base.py); `grid`, `interpolation`, `trajectory` and `translation_grid` are what
`genlab sample` draws, each from one torch.Generator, so a seed gives the command's images bit for bit.
torch is imported by the functions that need it, not by this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from genlab.errors import ConfigError, require

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig
    from torch import Tensor

    from genlab.families.base import Family
    from genlab.modules.base import TrainingModule

class Run:
    """A trained genlab model and what its run recorded.

    Attributes:
        model: the run's training loop (a LightningModule) around its family, in eval mode, weights loaded.
        config: the run's config as genlab rebuilt it (`paths`: this session's).
        source: what was loaded: a checkpoint file, or an export folder.
        checkpoint: the checkpoint whose weights these are (an export's: inside the export folder, by name);
            its metrics.json lies beside it.
    """

    def __init__(self, model: TrainingModule, config: DictConfig, *, source: Path, checkpoint: Path,
                 summary_file: Path | None = None, training: dict[str, Any] | None = None,
                 trust_run: bool = False) -> None:
        self.model = model
        self.config = config
        self.source = source
        self.checkpoint = checkpoint
        # whether the user vouched for the folder (trust_run=True): an export of it is read back the same way
        self.trust_run = trust_run
        self._summary_file = summary_file
        self._training = training

    def __repr__(self) -> str:
        return (f"Run({type(self.family).__name__} from {self.source}, weights={self.weights}, device={self.device},"
                f" image_shape={list(self.image_shape)}, num_classes={self.num_classes})")

    # --- what the model is ------------------------------------------------------------------

    @property
    def family(self) -> Family:
        """The family's math object (genlab/families/): its networks, its loss, its sampler."""
        return self.model.family

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the images it makes."""
        task = getattr(self.family, "task", None)
        return tuple(task.target_shape) if task is not None else tuple(self.config.data.image_shape)

    @property
    def num_classes(self) -> int:
        """Classes it can be asked for (0: unconditional)."""
        return self.family.num_classes

    @property
    def translates(self) -> bool:
        """Whether it makes images from input images (an image-to-image family: use `translate`)."""
        return getattr(self.family, "task", None) is not None

    @property
    def weights(self) -> str:
        """Which weights sample unless a call says: `ema`, `raw`, or a post-hoc average (as metrics.json names them)."""
        return self.model.weights

    @property
    def sampler_options(self) -> list[str]:
        """The keyword options `sample` passes to the family's sampler (none for GANs and VAEs)."""
        return self.family.sampler_options()

    @property
    def sampler_defaults(self) -> dict[str, Any]:
        """The sampler settings a call without options uses (the run's `model.sampler`), with its network
        evaluations per image for many-step families."""
        return self.family.sampler_settings({})

    # --- images -----------------------------------------------------------------------------

    def sample(self, n: int | None = None, *, labels: int | Sequence[int] | Tensor | None = None, seed: int | None = None,
               generator: torch.Generator | None = None, noise: Tensor | None = None, ema: bool | None = None,
               **sampler: Any) -> Tensor:
        """`n` images in [-1, 1], (n, C, H, W) on the run's device.

        labels: the class of each image (a list, a tensor, or one int for all) for a conditional model; None
            cycles through the classes (image i of class i % num_classes).
        seed: the seed of the noise and of the sampler's draws (default 0); or `generator`, a CPU torch.Generator
            that goes on from where it stands.
        noise: the starting noise itself ((n, *noise_shape)), in place of draws from the seed.
        ema: False samples with the raw weights, True with the moving average; None: as loaded.
        sampler: the family's sampler options, e.g. steps=20, method="ddim", guidance=2.0 (`sampler_options`).
        """
        if self.translates:
            raise ConfigError(f"{type(self.family).__name__} makes images from input images: call"
                              " run.translate(inputs) (run.pairs(n) gives the test split's inputs)")
        labels = self._labels(labels, n, noise)
        if n is None and labels is None and noise is None:
            raise ConfigError("sample() needs n, labels or noise: e.g. run.sample(16)")
        if n is None and labels is not None and noise is None:
            n = len(labels)
        require(n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0), "n", n, "a positive integer")
        return self.model.sample(n, labels=labels, generator=self._generator(seed, generator), noise=noise, ema=ema,
                                 **sampler)

    def translate(self, inputs: Tensor, *, seed: int | None = None, generator: torch.Generator | None = None,
                  ema: bool | None = None, **sampler: Any) -> Tensor:
        """An image-to-image family's outputs for `inputs`, (n, *input shape) task inputs in [-1, 1] (`pairs`
        makes them from the run's data); `seed` or `generator` seeds what the family draws (dropout, noise)."""
        if not self.translates:
            raise ConfigError(f"{type(self.family).__name__} makes images from noise: call run.sample(n)")
        return self.model.sample(noise=inputs, generator=self._generator(seed, generator), ema=ema, **sampler)

    def pairs(self, n: int, *, split: str = "test", seed: int = 0) -> tuple[Tensor, Tensor]:
        """(inputs, targets): the first `n` images of the run's data `split` made into the task's pairs under
        `seed`, on the run's device, as `genlab sample` and `genlab eval` make them (reads the data set)."""
        if not self.translates:
            raise ConfigError(f"{type(self.family).__name__} makes images from noise: it has no task pairs")
        from genlab.builder import build_datamodule
        from genlab.data.datamodule import to_signed_unit

        require(split in ("train", "val", "test"), "split", split, "'train', 'val' or 'test'")
        images = build_datamodule(self.config).split(split).images[:n]
        pair = self.family.task.fixed_pair(to_signed_unit(images).to(self.device), seed)
        return pair.source, pair.target

    def grid(self, n: int = 64, nrow: int = 8, /, *, seed: int | None = None, generator: torch.Generator | None = None,
             **sampler: Any) -> tuple[Tensor, int]:
        """`genlab sample`'s grid: (images, images per row); a conditional model's rows are one class each."""
        from genlab.generation import sample_grid

        return sample_grid(self.model, n, nrow, self._generator(seed, generator), sampler)

    def interpolation(self, rows: int = 8, steps: int = 10, /, *, seed: int | None = None,
                      generator: torch.Generator | None = None, **sampler: Any) -> Tensor:
        """`genlab sample`'s latent walk: rows x steps images from one noise draw to another (`steps` is given by
        position: a keyword `steps=` is the sampler's)."""
        from genlab.generation import interpolation_strip

        return interpolation_strip(self.model, rows, steps, self._generator(seed, generator), sampler)

    def trajectory(self, rows: int = 4, frames: int = 10, /, *, seed: int | None = None,
                   generator: torch.Generator | None = None, source: Tensor | None = None,
                   **sampler: Any) -> Tensor | None:
        """(rows, frames, C, H, W): many-step samples on their way from noise to image (an image-to-image family's
        from inputs `source`); None for families that make an image in one pass."""
        extra = {} if source is None else {"source": source}
        return self.model.trajectory(rows, frames, self._generator(seed, generator), **extra, **sampler)

    def translation_grid(self, inputs: Tensor, targets: Tensor, outputs_per_input: int = 3, /, *,
                         seed: int | None = None, generator: torch.Generator | None = None,
                         **sampler: Any) -> tuple[Tensor, int]:
        """`genlab sample`'s image-to-image rows: input | outputs | target per input, and the row length."""
        from genlab.generation import translation_rows

        outputs = outputs_per_input if self.family.stochastic else 1
        return translation_rows(self.model, inputs, targets, outputs, self._generator(seed, generator), sampler)

    # --- what the run recorded ------------------------------------------------------------------

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json's evaluations of these weights ({entry: {"protocol": ..., "metrics": ...}}, each under its
        protocol; genlab/run/metrics_file.py); {} when they were never evaluated."""
        from genlab.run.metrics_file import read_entries, results_file

        entries, _ = read_entries(results_file(self.checkpoint))
        name = self.checkpoint.name
        return {key: value for key, value in (entries or {}).items() if key == name or key.startswith(f"{name} [")}

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary.json (status, overrides, final metrics, generator steps, seconds); an export's training
        facts; {} when there is none."""
        if self._training is not None:
            return dict(self._training)
        if self._summary_file is None or not self._summary_file.is_file():
            return {}
        return json.loads(self._summary_file.read_text(encoding="utf-8"))

    def evaluate(self, *, save: bool = False, **protocol: Any) -> dict[str, Any]:
        """`genlab eval`'s metrics of these weights under its protocol (configs/eval.yaml's keys, e.g.
        n_samples=1000, extractor="classifier", sampler={"steps": 20}); the results as metrics.json holds them.
        save=True merges them into metrics.json beside the checkpoint, as the command does."""
        from genlab.commands.evaluate import EXTRACTORS, judge
        from genlab.run.metrics_file import write_results

        cfg = eval_protocol(protocol, self.config.paths, str(self.checkpoint), str(self.device))
        if cfg.extractor not in EXTRACTORS:
            raise ConfigError(f"extractor={cfg.extractor!r} is not known; choose one of: {', '.join(EXTRACTORS)}")
        results = judge(self.model, self.config, cfg, str(self.device), str(self.checkpoint))
        if save:
            write_results(results, self.checkpoint)
        return results

    def export(self, out: str | Path, *, format: str = "safetensors", n: int = 64, nrow: int = 8, seed: int = 0,
               sampler: dict[str, Any] | None = None, licence: str | None = None) -> Path:
        """`genlab export`: these weights as a new self-contained folder `out` (safetensors weights, the config, the
        sampler defaults, metrics.json, a sample grid of `n` images, a model card); format="onnx" adds the ONNX graph
        of a one-pass generator. Loaded back and checked to sample alike before it is kept; a non-empty `out` is
        refused."""
        from genlab.export.write import export_run

        return export_run(self, Path(out), format=format, n=n, nrow=nrow, seed=seed, sampler=sampler, licence=licence)

    # --- helpers ----------------------------------------------------------------------------------

    def _generator(self, seed: int | None, generator: torch.Generator | None) -> torch.Generator:
        import torch

        if generator is not None:
            if seed is not None:
                raise ConfigError("give seed or generator, not both")
            return generator
        from genlab.api.loading import check_seed

        return torch.Generator().manual_seed(check_seed(0 if seed is None else seed))

    def _labels(self, labels: Any, n: int | None, noise: Tensor | None) -> Tensor | None:
        """`labels` as the family takes them: a tensor of class indices, checked against the classes."""
        if labels is None:
            return None
        import torch

        if not self.family.conditional:
            raise ConfigError(f"labels: {type(self.family).__name__} is unconditional (model.num_classes=0): leave labels out")
        if isinstance(labels, int) and not isinstance(labels, bool):
            count = n if n is not None else (len(noise) if noise is not None else None)
            if count is None:
                raise ConfigError("labels=<one class> needs n: e.g. run.sample(16, labels=3)")
            labels = [labels] * count
        labels = torch.as_tensor(labels)
        valid = labels.dim() == 1 and not labels.is_floating_point() and labels.dtype != torch.bool and len(labels) > 0
        require(valid and bool(((labels >= 0) & (labels < self.num_classes)).all()), "labels",
                labels.tolist() if labels.numel() <= 8 else f"{labels.numel()} values",
                f"class indices from 0 to {self.num_classes - 1}, one per image")
        if n is not None and len(labels) != n:
            raise ConfigError(f"labels: {len(labels)} labels for n={n} images: give one per image")
        return labels.long()


def eval_protocol(protocol: dict[str, Any], paths: DictConfig, checkpoint: str, device: str) -> DictConfig:
    """configs/eval.yaml composed with `protocol`'s keys and this session's `paths`, checked key by key as the
    command's are (genlab/schema/)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import ConfigKeyError

    from genlab.schema import check_command

    if "device" in protocol or "ckpt_path" in protocol:
        raise ConfigError("evaluate(): the run's device and weights are the loaded ones: load it again with"
                          " genlab.load(..., device=...) to judge elsewhere")
    if GlobalHydra.instance().is_initialized():  # inside a genlab command
        cfg = compose("eval", overrides=["ckpt_path=loaded"])
    else:
        with initialize_config_module("genlab.configs", version_base="1.3"):
            cfg = compose("eval", overrides=["ckpt_path=loaded"])
    with open_dict(cfg):
        cfg.paths = paths
    try:
        cfg = OmegaConf.merge(cfg, {"progress": False, **protocol, "ckpt_path": checkpoint, "device": device})
    except ConfigKeyError as error:
        raise ConfigError(f"evaluate(): {error.key} is not a key of genlab eval (configs/eval.yaml): drop it") from None
    check_command("eval", cfg)
    return cfg
