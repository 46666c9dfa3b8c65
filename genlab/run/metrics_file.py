"""metrics.json beside the checkpoint holds every evaluation of the run's checkpoints, one entry per checkpoint
and protocol: `"last.ckpt"` is that checkpoint's latest evaluation, and each earlier one under another
protocol (split, n_samples, extractor, seed, sampler, ema or raw weights, the metrics' settings, the judges)
stays beside it as `"last.ckpt [val split, 20 generated, classifier, seed 0, ema, 1a2b3c4d]"`. Evaluating
again under the same protocol replaces that protocol's entry, and the log says so. The table is printed
before any file is written, the command's own folder keeps a copy, and a metrics.json genlab cannot read is
left as it is (the results go to a new metrics-<time>.json beside it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.run.atomic import atomic_write_json
from genlab.run.fresh import write_new
from genlab.run.waiting_lock import exclusive_lock

log = logging.getLogger("genlab")


class ResultsNotSaved(GenlabError):
    """metrics.json could not be written beside the checkpoint; the results were printed (and kept in the
    command's own folder) before this was raised."""


# What makes two evaluations of one checkpoint comparable: every protocol setting that changes a number, and
# the judges' weights (not the device, the wall clock, or where this machine keeps the judges).
PROTOCOL_IDENTITY = ("data", "split", "n_generated", "n_real", "extractor", "seed", "weights", "sampler",
                     "kid_subsets", "kid_subset_size", "pr_k", "is_splits", "coverage_threshold", "task",
                     "outputs_per_input", "diversity_inputs")


def results_file(ckpt_path: str | Path) -> Path:
    """metrics.json beside the checkpoint: every evaluation of the run's checkpoints in one file."""
    return Path(ckpt_path).expanduser().resolve().with_name("metrics.json")


def write_results(results: dict[str, Any], ckpt_path: str | Path) -> Path:
    """Merge `results` into metrics.json beside the checkpoint (merge_entry says how) and return where they went.

    Evaluations of two checkpoints of one run may run at once (`genlab eval -m ckpt_path=a,b
    hydra/launcher=parallel`): the read-merge-write holds a lock file, and the new file replaces the old whole,
    so neither entry is lost and no reader sees half a file. A metrics.json that is not a JSON object is never
    overwritten: the results go to a new metrics-<time>.json beside it. A folder that cannot be written raises
    ResultsNotSaved, naming it.
    """
    path = results_file(ckpt_path)
    try:
        with exclusive_lock(path.with_name(".metrics.json.lock")):
            entries, unreadable = read_entries(path)
            if entries is None:
                return write_beside_unreadable(results, Path(ckpt_path).name, path, unreadable)
            merge_entry(entries, Path(ckpt_path).name, results)
            atomic_write_json(path, entries)
    except OSError as error:
        raise ResultsNotSaved(f"cannot write {path.name} into {path.parent} ({error.strerror or error}):"
                              " make the folder writable and run genlab eval again") from error
    return path


def read_entries(path: Path) -> tuple[dict[str, Any] | None, str]:
    """metrics.json's entries ({} when there is no file yet), or None and why it cannot be read as genlab's."""
    if not os.path.lexists(path):
        return {}, ""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} at line {error.lineno}"
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, getattr(error, "strerror", None) or str(error)
    if not isinstance(entries, dict):
        return None, f"a JSON {type(entries).__name__}, not an object of results by checkpoint"
    return entries, ""


def write_beside_unreadable(results: dict[str, Any], name: str, unreadable: Path, reason: str) -> Path:
    """Keep a metrics.json genlab cannot read as it is (it may be the only copy of someone's numbers), and put
    the new results, as metrics.json would hold them, in a new metrics-<time>.json beside it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps({name: results}, indent=2).encode("utf-8")
    written = write_new(unreadable.with_name(f"metrics-{stamp}.json"), lambda stream: stream.write(text))
    log.warning("%s cannot be read (%s): it is left as it is, and these results went to %s",
                unreadable, reason, written)
    return written


def protocol_identity(results: Any) -> dict[str, Any] | None:
    """What tells two evaluations' protocols apart (PROTOCOL_IDENTITY and the judges); None if none is recorded."""
    protocol = results.get("protocol") if isinstance(results, dict) else None
    if not isinstance(protocol, dict):
        return None
    judges = protocol.get("judge") if isinstance(protocol.get("judge"), dict) else {}
    return {**{key: protocol.get(key) for key in PROTOCOL_IDENTITY},
            "judges": [(judges.get(role) or {}).get("weights_sha256") for role in ("extractor", "classifier")]}


def protocol_label(name: str, results: Any) -> str:
    """The entry name of checkpoint `name`'s results under their protocol, readable at a glance:
    `last.ckpt [val split, 20 generated, classifier, seed 0, ema, 1a2b3c4d]` (the hash covers the rest)."""
    identity = protocol_identity(results)
    if identity is None:
        return f"{name} [protocol not recorded]"
    sampler = identity["sampler"] if isinstance(identity["sampler"], dict) else {}
    options = " ".join(f"{key}={value}" for key, value in sorted(sampler.items()) if key != "evaluations")
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [f"{identity['split']} split", f"{identity['n_generated']} generated", str(identity["extractor"]),
             f"seed {identity['seed']}", str(identity["weights"]), *([f"sampler {options}"] if options else []), digest]
    return f"{name} [{', '.join(parts)}]"


def merge_entry(entries: dict[str, Any], name: str, results: dict[str, Any]) -> None:
    """Make `results` checkpoint `name`'s entry in metrics.json, where evaluations under different protocols sit
    side by side and one protocol has one entry.

    `entries[name]` is always the checkpoint's latest evaluation (what `genlab train`'s `evaluate=` and older
    readers look up); an earlier one under another protocol moves to its protocol_label, and one under the same
    protocol (at `name` or at its label) is replaced, as the log says.
    """
    earlier = entries.get(name)
    identity, label = protocol_identity(results), protocol_label(name, results)
    moves = name in entries and protocol_identity(earlier) != identity
    if label in entries or (name in entries and not moves):
        log.info("metrics.json: these results replace the earlier ones of %s under the same protocol", name)
    entries.pop(label, None)
    if moves:
        moved_to = unused_key(entries, protocol_label(name, earlier))
        entries[moved_to] = earlier
        log.info("metrics.json: the earlier results of %s, under another protocol, stay as %r", name, moved_to)
    entries[name] = results


def unused_key(entries: dict[str, Any], key: str) -> str:
    """`key`, or `key (2)`, `key (3)`, ...: an entry of unknown protocol never replaces another."""
    if not key.endswith("[protocol not recorded]"):
        return key
    number, candidate = 1, key
    while candidate in entries:
        number += 1
        candidate = f"{key} ({number})"
    return candidate


def keep_in_job_folder(results: dict[str, Any], output_dir: Path) -> Path | None:
    """This evaluation's own record in the command's folder (metrics.json, or metrics-2.json if a reused folder
    holds one already): the results survive whatever happens beside the checkpoint."""
    text = json.dumps(results, indent=2).encode("utf-8")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        return write_new(output_dir / "metrics.json", lambda stream: stream.write(text))
    except OSError as error:
        log.warning("cannot keep a copy of the results in %s (%s)", output_dir, error.strerror or error)
        return None
