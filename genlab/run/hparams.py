"""A finished run's settings, as every tracker records them beside its final metrics (TensorBoard's HPARAMS tab,
MLflow's params, W&B's config: genlab/trackers/), so a sweep can be compared there as well as with `genlab report`."""

from __future__ import annotations

from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

# what sets runs apart most often, shown for every run; a run's own overrides are added to these
ESSENTIALS = (
    "model._target_", "model.loss", "model.latent_dim", "model.n_critic", "optimizer.lr",
    "data.name", "data.batch_size", "seed", "budget.generator_steps", "budget.images",
)


def _scalar(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def run_hparams(cfg: DictConfig, overrides: Iterable[str]) -> dict[str, bool | int | float | str]:
    """The essentials and every key this run overrode, with the values it ran with."""
    keys = list(ESSENTIALS) + [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    values = {}
    for key in dict.fromkeys(keys):  # ordered, without repeats
        if key.startswith("hydra.") or key == "ckpt_path":
            continue
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is not None:
            values[key] = _scalar(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value)
    return values
