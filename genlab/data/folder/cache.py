"""A folder decoded once: a uint8 array on disk, keyed by the folder's content and the preprocessing.

<cache_dir>/folders/<folder name>-<preprocessing digest>/<content digest>/ holds images.npy (N, C, S, S),
labels.npy, and index.json (classes, files, skipped files and why). The content digest covers every image's
path, size and modification time (scan.FolderListing.fingerprint), so adding, removing, changing or touching
an image gives a new cache and the old one of the same folder and preprocessing is removed.

Decoding writes into a private folder beside the cache and renames it into place when complete: a run
interrupted mid-decode leaves no folder that a later run reads. A file lock makes concurrent runs and DDP
ranks wait for the one that decodes rather than decode again. images.npy is memory-mapped when read, so
neither decoding nor a streamed data set needs the whole array in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.folder.decode import BadImage, decode
from genlab.data.folder.scan import FolderListing
from genlab.errors import DataFormatError

log = logging.getLogger("genlab")
FORMAT_VERSION = 1  # bump when decode() changes what it writes


@dataclass(frozen=True)
class Preprocessing:
    size: int
    channels: int
    resize: str
    skip_bad: bool

    def digest(self) -> str:
        settings = {"size": self.size, "channels": self.channels, "resize": self.resize, "skip_bad": self.skip_bad,
                    "version": FORMAT_VERSION}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DecodedFolder:
    """A complete cache: `images` memory-mapped uint8 (N, C, S, S), `labels` int64 (N,), and its index."""

    path: Path
    images: np.ndarray
    labels: np.ndarray
    index: dict[str, Any]


def cache_path(cache_dir: str | Path, listing: FolderListing, preprocessing: Preprocessing) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in listing.root.resolve().name) or "root"
    root_digest = hashlib.sha256(str(listing.root.resolve()).encode()).hexdigest()[:8]
    return (Path(cache_dir).expanduser() / "folders" / f"{safe}-{root_digest}-{preprocessing.digest()}"
            / listing.fingerprint()[:24])


def open_decoded(path: Path) -> DecodedFolder:
    index = json.loads((path / "index.json").read_text())
    return DecodedFolder(path, np.load(path / "images.npy", mmap_mode="r"), np.load(path / "labels.npy"), index)


def _progress(total: int, what: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="img", disable=None, leave=False)


def _decode_into(folder: Path, listing: FolderListing, prep: Preprocessing) -> None:
    """Decode every image of `listing` into `folder` (images.npy, labels.npy, index.json last)."""
    shape = (len(listing.files), prep.channels, prep.size, prep.size)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
    kept: list[int] = []
    skipped: list[dict[str, str]] = []
    with _progress(len(listing.files), f"decoding {listing.root.name}") as bar:
        for i, name in enumerate(listing.files):
            try:
                images[len(kept)] = decode(listing.root / name, prep.size, prep.channels, prep.resize)
                kept.append(i)
            except BadImage as bad:
                if not prep.skip_bad:
                    raise DataFormatError(f"data.root: {listing.root / name} {bad}: remove or replace it, or set"
                                          " data.skip_bad=true to leave such files out (their count is reported)")
                skipped.append({"file": name, "why": str(bad)})
            bar.update()
    if not kept:
        raise DataFormatError(f"data.root={listing.root}: none of its {len(listing.files)} images could be used"
                              f" ({skipped[0]['file']} {skipped[0]['why']})")
    images.flush()
    del images
    if skipped:  # shrink to the images kept: rewrite the array without the trailing rows
        full = np.load(folder / "images.npy", mmap_mode="r")
        compact = np.lib.format.open_memmap(folder / "images.tmp.npy", mode="w+", dtype=np.uint8,
                                            shape=(len(kept), *shape[1:]))
        for start in range(0, len(kept), 1024):
            end = min(start + 1024, len(kept))
            compact[start:end] = full[start:end]
        compact.flush()
        del compact, full
        os.replace(folder / "images.tmp.npy", folder / "images.npy")
    labels = np.asarray([listing.labels[i] for i in kept], dtype=np.int64)
    np.save(folder / "labels.npy", labels)
    counts = np.bincount(labels, minlength=len(listing.classes)).tolist()
    index = {"root": str(listing.root.resolve()), "classes": list(listing.classes), "images_per_class": counts,
             "files": [listing.files[i] for i in kept], "skipped": skipped,
             "preprocessing": {"size": prep.size, "channels": prep.channels, "resize": prep.resize,
                               "skip_bad": prep.skip_bad, "version": FORMAT_VERSION}}
    (folder / "index.json").write_text(json.dumps(index, indent=1))


def decoded(cache_dir: str | Path, listing: FolderListing, prep: Preprocessing) -> DecodedFolder:
    """The cache of `listing` under `prep`, decoded now if no complete one exists."""
    from filelock import FileLock

    path = cache_path(cache_dir, listing, prep)
    if not (path / "index.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.parent / "decode.lock")):
            if not (path / "index.json").is_file():  # another process may have decoded it while we waited
                partial = path.parent / f".partial-{uuid.uuid4().hex[:8]}"
                partial.mkdir()
                try:
                    log.info("decoding %d images of %s once into %s", len(listing.files), listing.root, path)
                    _decode_into(partial, listing, prep)
                    os.replace(partial, path)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
                for stale in path.parent.iterdir():  # this folder's older contents, and partial folders of crashes
                    if stale != path and stale.is_dir():
                        shutil.rmtree(stale, ignore_errors=True)
    found = open_decoded(path)
    if found.index["skipped"]:
        first = found.index["skipped"][0]
        log.warning("data.skip_bad=true: %d of %d files left out (e.g. %s %s); the list is in %s",
                    len(found.index["skipped"]), len(listing.files), first["file"], first["why"], path / "index.json")
    return found
