"""What a folder of images holds: its image files and, when it has one sub-folder per class, their labels.

Layouts (as torchvision's ImageFolder, and diffusers' `--train_data_dir` for the flat one):
- flat: images directly in `root`: one class, named after the folder;
- one sub-folder per class: `root/<class>/**/<image>`, classes in the sorted order of their names (Python's
  string order), label i for the i-th.
Files Pillow cannot open by their suffix (a README, `.DS_Store`) and hidden files are not images and are left
alone; files with an image suffix that fail to decode are bad files (decode.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from genlab.errors import DataFormatError, DataNotFoundError


@cache
def image_suffixes() -> frozenset[str]:
    """The file suffixes of every format Pillow can open (PNG, JPEG, WebP, BMP, TIFF, GIF, ...)."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in image_suffixes()


@dataclass(frozen=True)
class FolderListing:
    """`files` relative to `root` in a fixed order (class by class, then by path), `labels` beside them."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]

    @property
    def flat(self) -> bool:
        return not any("/" in f for f in self.files)

    def fingerprint(self) -> str:
        """A digest of what each file is now (path, size, modification time): any image added, removed, changed
        or touched changes it, and no image needs reading to find out."""
        digest = hashlib.sha256()
        for name in self.files:
            stat = (self.root / name).stat()
            digest.update(json.dumps([name, stat.st_size, stat.st_mtime_ns]).encode())
        return digest.hexdigest()


def _class_folders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def class_count(root: str | Path) -> int:
    """How many classes `root` holds (1 for a flat folder): data.num_classes of data=folder, read at compose time.
    A missing folder counts 1 here; loading it names the folder."""
    root = Path(str(root)).expanduser()
    if not root.is_dir():
        return 1
    folders = _class_folders(root)
    return len(folders) if folders and not any(is_image(p) for p in root.iterdir()) else 1


def list_folder(root: str | Path, min_per_class: int = 1) -> FolderListing:
    """The images under `root`; a missing or empty folder, a mix of loose images and class folders, or a class
    with fewer than `min_per_class` images is refused in one line naming the folder."""
    root = Path(str(root)).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"data.root={root} is not a folder: point data.root at a folder of images")
    loose = sorted(p.name for p in root.iterdir() if is_image(p))
    folders = _class_folders(root)
    if loose and folders:
        raise DataFormatError(f"data.root={root} holds both images ({loose[0]}, ...) and sub-folders ({folders[0].name},"
                              " ...): keep one layout, images alone (one class) or one sub-folder per class")
    if loose:
        classes, files, labels = (root.name,), tuple(loose), (0,) * len(loose)
    else:
        classes = tuple(f.name for f in folders)
        files, labels = [], []
        for label, folder in enumerate(folders):
            found = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*") if is_image(p))
            if len(found) < min_per_class:
                raise DataFormatError(f"data.root={root}: class folder {folder.name!r} holds {len(found)} images, fewer"
                                      f" than data.min_per_class={min_per_class}: add images, remove the folder, or"
                                      " lower data.min_per_class")
            files += found
            labels += [label] * len(found)
        files, labels = tuple(files), tuple(labels)
    if not files:
        suffixes = ", ".join(sorted(s for s in image_suffixes() if s in {".png", ".jpg", ".jpeg", ".webp", ".bmp"}))
        raise DataNotFoundError(f"data.root={root} holds no images ({suffixes}, ...): point data.root at a folder"
                                " of images, or of one sub-folder of images per class")
    return FolderListing(root, classes, files, labels)
