"""EDM2's post-hoc EMA snapshots in a run folder, and the average of any length rebuilt from them.

Training with `model.ema.posthoc.sigma_rels` writes each power-function average every `snapshot_every`
generator steps to <run>/posthoc_ema/<sigma_rel>-<generator step>.safetensors (tensors and a few strings of
metadata: safetensors, since genlab never unpickles anything from a run folder), each file whole or absent
(genlab/run/atomic.py). A resumed run writes the same files again as it reaches their steps, identical to the
first time; one resumed into a new folder takes the earlier folder's snapshots up to its checkpoint with it.

`genlab eval/sample ... ema_length=<sigma_rel>` rebuilds the average of that length (EDM2's Algorithm 3,
genlab/posthoc_ema.py) from the snapshots up to the checkpoint's step, and the checkpoint's own averages
(at its step), at the checkpoint's step or at an earlier snapshot's (`ema_step`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

from torch import Tensor

from genlab.errors import ConfigError, GenlabError
from genlab.posthoc_ema import (SIGMA_REL_MAX, PosthocEMA, Snapshot, combine, gamma_of, is_sigma_rel,
                                reconstruction_weights)
from genlab.run.atomic import atomic_write, whole_file_beside

FOLDER = "posthoc_ema"
FORMAT = "genlab posthoc_ema 1"
HOW_TO_KEEP = "train with model.ema.posthoc.sigma_rels=[0.05,0.1] (or model/ema=posthoc) to keep them"


def snapshot_folder(run_dir: str | Path) -> Path:
    return Path(run_dir) / FOLDER


def snapshot_name(snapshot: Snapshot) -> str:
    return f"{snapshot.sigma_rel:g}-{snapshot.step:08d}.safetensors"


def write_snapshots(run_dir: str | Path, snapshots: Sequence[Snapshot]) -> list[Path]:
    """Each snapshot as <run>/posthoc_ema/<sigma_rel>-<step>.safetensors, written beside and renamed over its name."""
    from safetensors.torch import save

    written = []
    for snapshot in snapshots:
        metadata = {"format": FORMAT, "sigma_rel": repr(snapshot.sigma_rel), "gamma": repr(snapshot.gamma),
                    "t": str(snapshot.t), "generator_step": str(snapshot.step)}
        data = save(snapshot.tensors, metadata=metadata)
        path = snapshot_folder(run_dir) / snapshot_name(snapshot)
        written.append(atomic_write(path, lambda stream, data=data: stream.write(data)))
    return written


def listed(run_dir: str | Path) -> list[tuple[Path, Snapshot]]:
    """The run's snapshot files with what their metadata says (their tensors not read yet), by step."""
    from safetensors import safe_open

    found = []
    for path in sorted(snapshot_folder(run_dir).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"its metadata says format {meta.get('format')!r}, not {FORMAT!r}")
            snapshot = Snapshot(float(meta["sigma_rel"]), float(meta["gamma"]), int(meta["t"]),
                                int(meta["generator_step"]), {})
        except Exception as error:  # safetensors' own errors name no common base
            raise GenlabError(f"{path} is not a post-hoc EMA snapshot genlab wrote ({error}): move it out of"
                              f" {path.parent}") from None
        found.append((path, snapshot))
    return sorted(found, key=lambda item: (item[1].step, item[1].sigma_rel))


def read_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def carry_snapshots(from_run: str | Path, to_run: str | Path, up_to_step: int) -> int:
    """A run resumed into a new folder: the earlier folder's snapshots up to the checkpoint's generator step, linked
    (or copied) into the new one, each whole or absent. Returns how many."""
    if Path(from_run).resolve() == Path(to_run).resolve():
        return 0
    carried = 0
    for path, snapshot in listed(from_run):
        if snapshot.step > up_to_step:
            continue
        target = snapshot_folder(to_run) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as source:
            temporary = whole_file_beside(target, lambda stream, source=source: shutil.copyfileobj(source, stream))
        os.replace(temporary, target)
        carried += 1
    return carried


def reconstruct(run_dir: str | Path, posthoc: PosthocEMA | None, checkpoint_step: int, averaged: set[str],
                sigma_rel: float, step: int | None = None) -> tuple[dict[str, Tensor], str]:
    """The image network's state_dict for the average of relative length `sigma_rel` at generator step `step` (null:
    the checkpoint's), rebuilt from the run's snapshots up to the checkpoint's step and the checkpoint's own averages
    (`posthoc`); `averaged`: the names of its parameters. Returns it and its name, as metrics.json records it."""
    if not is_sigma_rel(sigma_rel):
        raise ConfigError(f"ema_length={sigma_rel!r} is not valid: it must be a relative length in (0, {SIGMA_REL_MAX}),"
                          " EDM2's sigma_rel, where its gamma is defined: e.g. ema_length=0.1")
    files = [(path, s) for path, s in listed(run_dir) if s.step <= checkpoint_step]
    if posthoc is None or not files:
        folder = snapshot_folder(run_dir)
        why = (f"the run kept no post-hoc EMA: {HOW_TO_KEEP}" if posthoc is None else
               f"the checkpoint is at generator step {checkpoint_step}, before the first snapshot"
               f" (model.ema.posthoc.snapshot_every={posthoc.snapshot_every}): train on, or leave ema_length out")
        raise ConfigError(f"ema_length={sigma_rel}: {folder} holds no snapshots for this checkpoint, as {why}")
    # the checkpoint's own averages stand for its step's files (the same tensors) and go beyond the last file
    sources: list[tuple[Path | None, Snapshot]] = [(path, s) for path, s in files if s.step < checkpoint_step]
    sources += [(None, s) for s in posthoc.snapshots(checkpoint_step)]
    target = checkpoint_step if step is None else step
    steps = sorted({s.step for _, s in sources})
    if target > steps[-1]:
        raise ConfigError(f"ema_step={target} is later than the last snapshot, at generator step {steps[-1]} (the"
                          f" checkpoint's): choose ema_step <= {steps[-1]}, or a later checkpoint")
    if target not in steps:
        shown = ", ".join(map(str, steps)) if len(steps) <= 5 else f"{steps[0]}, {steps[1]}, {steps[2]}, ..., {steps[-1]}"
        raise ConfigError(f"ema_step={target} is not a snapshot's step: choose one of {shown}"
                          f" (every model.ema.posthoc.snapshot_every={posthoc.snapshot_every}, and the checkpoint's)")
    # one of each profile (t, gamma): a copy of a file under another name would make Algorithm 3's system singular
    used = list({(s.t, s.gamma): (path, s) for path, s in sources if s.step <= target}.values())
    t_r = next(s.t for _, s in used if s.step == target)
    weights = reconstruction_weights([s.t for _, s in used], [s.gamma for _, s in used], t_r, gamma_of(sigma_rel))
    state = combine(_with_tensors(used), weights.tolist(), averaged)
    return state, f"posthoc_ema sigma_rel={sigma_rel:g} at step {target}"


def _with_tensors(sources: Sequence[tuple[Path | None, Snapshot]]) -> Iterator[Snapshot]:
    """Each snapshot with its tensors, read from its file when its turn comes: the files are never all in memory."""
    for path, snapshot in sources:
        if path is None:
            yield snapshot
        else:
            yield Snapshot(snapshot.sigma_rel, snapshot.gamma, snapshot.t, snapshot.step, read_tensors(path))
