"""Resuming a run from its own folder: the config it was trained with, plus this command's overrides.

`genlab train ckpt_path=<run>/checkpoints/last.ckpt trainer.max_epochs=40` replays the run's own
overrides (<run>/.hydra/overrides.yaml, e.g. `experiment=quickstart`) before the new ones, so the
networks are rebuilt as they were trained. An override that changes a network's shape cannot
resume those weights: it is refused with one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError, first_line
from genlab.run.load import run_folder_of

if TYPE_CHECKING:
    from torch import nn

# keys of a run's own command line that a resume does not replay (Hydra's own settings, `hydra.searchpath`
# and the `hydra/launcher=...` groups included: genlab/run/trust.py refuses whatever of Hydra's gets past)
NOT_REPLAYED = ("ckpt_path", "hydra.", "hydra/", "resume_in")


def continues_in_place(resume_in: str | None, ckpt_path: str | None) -> bool:
    """`resume_in=same`: the resumed run writes into the checkpoint's own run folder (one TensorBoard curve)."""
    if resume_in not in (None, "new", "same"):
        raise ConfigError(f"resume_in={resume_in!r} is not valid: it must be new or same")
    return resume_in == "same" and bool(ckpt_path) and (run_folder_of(ckpt_path) / ".hydra").is_dir()


def keep_earlier_logs(output_dir: str | Path, stamp: str) -> None:
    """Before a run continues in its own folder: move its CSV log aside (csv/before_<stamp>/metrics.csv),
    since Lightning's CSVLogger starts metrics.csv anew. TensorBoard adds an event file by itself;
    `genlab report` reads every metrics.csv and event file of a folder as one curve."""
    log = Path(output_dir) / "csv" / "metrics.csv"
    if log.is_file():
        aside = log.parent / f"before_{stamp}"
        aside.mkdir(parents=True, exist_ok=True)
        log.rename(aside / log.name)


def run_dir(resume_in: str | None, ckpt_path: str | None, new_folder: str) -> str:
    """hydra.run.dir: the checkpoint's run folder when continuing in place, else a new folder."""
    return str(run_folder_of(ckpt_path)) if continues_in_place(resume_in, ckpt_path) else new_folder


def output_subdir(resume_in: str | None, ckpt_path: str | None, stamp: str) -> str:
    """hydra.output_subdir: a continued run keeps the run's own .hydra/ and records itself beside it."""
    return f".hydra/continued_{stamp}" if continues_in_place(resume_in, ckpt_path) else ".hydra"


def override_key(override: str) -> str:
    """`model=dcgan` -> `model`, `+a.b=1` -> `a.b`, `~callbacks.x` -> `callbacks.x`."""
    return override.split("=", 1)[0].lstrip("+~")


def run_overrides(ckpt_path: str | Path) -> list[str] | None:
    """The overrides the checkpoint's run was started with, or None outside a genlab run folder."""
    path = run_folder_of(ckpt_path) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return [str(o) for o in OmegaConf.load(path)]


def replayed(original: list[str]) -> list[str]:
    """The run's own overrides that a resume replays."""
    return [o for o in original if not override_key(o).startswith(NOT_REPLAYED)]


def merge_overrides(original: list[str], new: list[str]) -> list[str]:
    """The run's overrides, then this command's; a key given again takes the new value."""
    merged = {override_key(o): o for o in replayed(original)}
    for override in new:
        merged.pop(override_key(override), None)
        merged[override_key(override)] = override
    return list(merged.values())


def with_run_config(cfg: DictConfig, given: Sequence[str], record_in: Path | None, config_name: str = "train") -> DictConfig:
    """Inside `genlab train ckpt_path=...`: the config composed from the run's overrides and this command's
    (`given`), recorded in the new run's config folder `record_in` (its .hydra/; None: not recorded)."""
    from hydra import compose

    if not cfg.get("ckpt_path"):
        return cfg
    original = run_overrides(cfg.ckpt_path)
    if original is None:  # a checkpoint from elsewhere: this command's config alone
        return cfg
    from genlab.run.trust import check_config, check_resumed_run, targets_named, trusted

    folder, trust = run_folder_of(cfg.ckpt_path), trusted(cfg.get("trust_run", False))
    vouched = targets_named(cfg)  # what this command's own line names, the user's to vouch for
    if not trust:  # what the run folder holds names only code genlab ships (or this command names), before composing
        check_resumed_run(folder, replayed(original), vouched)
    overrides = merge_overrides(original, list(given))
    try:
        resumed = compose(config_name, overrides=overrides)
    except Exception as error:  # Hydra's own: an option or key this version no longer has
        raise ConfigError(
            f"cannot rebuild the config of the run of ckpt_path={cfg.ckpt_path} from its overrides {overrides}:"
            f" {first_line(error)}"
        ) from error
    if not trust:
        replayed_from = folder / ".hydra" / "overrides.yaml"
        check_config(resumed, f"the config composed from {replayed_from} and this command line", folder, vouched)
    if record_in is not None:
        record_config(resumed, overrides, record_in)
    return resumed


def record_config(cfg: DictConfig, overrides: list[str], folder: Path) -> None:
    """Rewrite this run's .hydra/config.yaml and overrides.yaml (in `folder`) to what it really trains with, so
    that `genlab eval`, `genlab sample` and a later resume rebuild this run as it ran."""
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), folder / "overrides.yaml")


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, Mapping):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}.{key}").items()}
    return {prefix: node}


def changed_keys(ckpt_path: str | Path, cfg: DictConfig) -> list[str]:
    """`key=value` of the model and data settings that differ from what the checkpoint's run used."""
    saved = run_folder_of(ckpt_path) / ".hydra" / "config.yaml"
    if not saved.is_file():
        return []
    before = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=False)
    changed = []
    for group in ("model", "data"):
        old, new = _flat(before.get(group, {}), group), _flat(now.get(group, {}), group)
        changed += [f"{key}={new[key]!r} (the run used {old.get(key)!r})" for key in new if old.get(key) != new[key]]
    return changed


def check_checkpoint_fits(state_dict: Mapping[str, Any], module: nn.Module, ckpt_path: str | Path, cfg: DictConfig) -> None:
    """Refuse, in one line, a checkpoint whose tensors do not fit the networks this config builds."""
    from genlab.modules.base import upgrade_state_dict
    from genlab.run.load import first_difference

    state_dict = upgrade_state_dict(dict(state_dict))
    expected = module.state_dict()
    fits = expected.keys() == state_dict.keys() and all(
        tuple(getattr(state_dict[name], "shape", ())) == tuple(tensor.shape) for name, tensor in expected.items()
    )
    if fits:
        return
    changed = changed_keys(ckpt_path, cfg)
    cause = f"; this command changes {changed[0]}: drop that override to resume" if changed else ""
    raise ConfigError(
        f"ckpt_path={ckpt_path} does not fit the model this config builds:"
        f" {first_difference(expected, dict(state_dict))}{cause}"
    )


def nothing_left_to_train(checkpoint: Mapping[str, Any], cfg: DictConfig) -> str | None:
    """Why resuming `checkpoint` under `cfg` would train nothing (the run reached its limits), or None.

    Lightning would start, find every limit reached and stop at once; genlab would then write a summary with
    no metrics over the finished run's. Epochs count as Lightning's loop records them (processed)."""
    loops = checkpoint.get("loops") or {}
    epochs = (((loops.get("fit_loop") or {}).get("epoch_progress") or {}).get("current") or {}).get("processed")
    trainer, budget, progress = cfg.get("trainer") or {}, cfg.get("budget") or {}, checkpoint.get("progress") or {}
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if isinstance(epochs, int) and isinstance(max_epochs, int) and max_epochs != -1 and epochs >= max_epochs:
        return f"the run trained {epochs} epochs of trainer.max_epochs={max_epochs}: raise trainer.max_epochs to train on"
    if isinstance(max_steps, int) and max_steps > 0 and checkpoint.get("global_step", 0) >= max_steps:
        return f"the run took {checkpoint.get('global_step')} steps of trainer.max_steps={max_steps}: raise trainer.max_steps"
    for key, done in (("generator_steps", "generator_steps"), ("images", "images_seen")):
        limit = budget.get(key)
        if limit and progress.get(done, 0) >= limit:
            return f"the run reached budget.{key}={limit}: raise budget.{key} to train on"
    return None


def check_something_to_continue(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Before `genlab train ckpt_path=...` makes or touches a folder: refuse a run that has nothing left to train
    under the config the resume would rebuild (the run's overrides, then this command's)."""
    from genlab.run.checkpoints import load_checkpoint

    try:
        checkpoint = load_checkpoint(cfg.ckpt_path, map_location="cpu")
    except Exception:
        return  # a missing or broken checkpoint is refused by the command itself, by name
    resumed = with_run_config(cfg, overrides, None)
    why = nothing_left_to_train(checkpoint, resumed)
    if why is not None:
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: nothing to continue: {why}")
