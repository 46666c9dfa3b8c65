"""data=folder's two paths measured: decoding, batches/s held in memory against streamed, and peak memory (proportional set size).

1. Writes a synthetic folder of `--images` JPEGs at `--size` px in two class folders (smooth random colour
   fields, as photos compress), then decodes it once through genlab's cache, timed.
2. Times the training loader of each path over the same epoch, in this process (images/s of uint8 batches
   scaled to [-1, 1]: the data path alone, interleaved so the machine's load falls on both).
3. Trains `dcgan` for `--steps` steps with `data.in_memory=true`, then `false`, each as its own `genlab train`
   process, sampling the resident memory (anonymous and file-backed, over the process and its workers)
   every 0.1 s: the peak of each.
4. With `--limit-mb` (Linux, root, cgroup v1 or v2): the same training with `data.in_memory=auto` inside a
   memory control group of that size, smaller than the decoded data: auto must choose streaming, and the run
   must finish within the limit.

    python scripts/folder_memory.py --images 50000 --size 128 --steps 100 --limit-mb 1500 --work outputs/folder_memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def write_folder(root: Path, count: int, size: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:06d}.jpg", quality=90)


def memory_of_tree(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) proportional set size, in bytes, of `pid` and its descendants: a page shared by
    forked workers counts once over them all (their RSS would count it in each)."""
    anonymous = file_backed = 0
    pids, seen = [pid], set()
    while pids:
        current = pids.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:] if ":" in line)
        anonymous += int(fields.get("Pss_Anon", "0 kB").split()[0]) * 1024
        file_backed += int(fields.get("Pss_File", "0 kB").split()[0]) * 1024
        pids += [int(child) for child in children]
    return anonymous, file_backed


def run_measured(command: list[str], cwd: Path, prefix: list[str] = ()) -> dict[str, float]:
    """Run `command` (after `prefix`), sampling its process tree's memory; its exit code, seconds and peaks."""
    started = time.perf_counter()
    process = subprocess.Popen([*prefix, *command], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    peaks = {"anonymous": 0, "total": 0}

    def sample() -> None:
        while process.poll() is None:
            anonymous, file_backed = memory_of_tree(process.pid)
            peaks["anonymous"] = max(peaks["anonymous"], anonymous)
            peaks["total"] = max(peaks["total"], anonymous + file_backed)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    sampler.join()
    path_line = next((line for line in output.splitlines() if "the train split is" in line), "")
    return {"code": process.returncode, "seconds": time.perf_counter() - started,
            "peak_anonymous_mb": peaks["anonymous"] / 2**20, "peak_resident_mb": peaks["total"] / 2**20,
            "path": path_line.split(" - ")[-1], "tail": output[-1500:] if process.returncode else ""}


def loader_speed(root: Path, size: int, cache: Path, repeats: int) -> dict[str, float]:
    """Images/s of one epoch of training batches, held in memory and streamed, best of `repeats` (interleaved)."""
    from genlab.data.folder.scan import class_count
    from genlab.data.folder.source import FolderDataModule

    best = {"held": 0.0, "streamed": 0.0}
    modules = {name: FolderDataModule(root=root, cache_dir=cache, image_size=size, num_classes=class_count(root),
                                      in_memory=(name == "held"), batch_size=128, val_size=0)
               for name in best}
    for module in modules.values():
        module.setup("fit")
    loaders = {name: module.train_dataloader() for name, module in modules.items()}
    for _ in range(repeats):
        for name, loader in loaders.items():
            started, images = time.perf_counter(), 0
            for batch in loader:
                images += len(batch[0])
            best[name] = max(best[name], images / (time.perf_counter() - started))
    return best


def cgroup_prefix(limit_mb: int, name: str) -> tuple[list[str], Path]:
    """A shell prefix that moves the command into a new memory control group of `limit_mb` MB."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    folder = Path("/sys/fs/cgroup") / name if v2 else Path("/sys/fs/cgroup/memory") / name
    folder.mkdir(exist_ok=True)
    (folder / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_mb * 2**20))
    return ["sh", "-c", f'echo $$ > {folder / "cgroup.procs"} && exec "$@"', "sh"], folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--limit-mb", type=int, default=0, help="also train inside a memory cgroup of this size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("outputs/folder_memory"))
    args = parser.parse_args()
    work = args.work.resolve()
    root, cache = work / f"images_{args.size}px", work / "cache"
    results: dict[str, object] = {"images": args.images, "size": args.size}
    if not root.exists():
        started = time.perf_counter()
        write_folder(root, args.images, args.size)
        print(f"wrote {args.images} JPEGs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    from genlab.data.folder.cache import Preprocessing, decoded
    from genlab.data.folder.scan import list_folder

    started = time.perf_counter()
    folder = decoded(cache, list_folder(root), Preprocessing(args.size, 3, "center_crop", False))
    results["decode_seconds"] = time.perf_counter() - started
    results["decoded_mb"] = folder.images.nbytes / 2**20
    print(f"decoded {len(folder.labels)} images ({results['decoded_mb']:.0f} MB) in {results['decode_seconds']:.0f} s",
          file=sys.stderr)
    results["loader_images_per_second"] = loader_speed(root, args.size, cache, args.repeats)
    print(f"loader: {results['loader_images_per_second']}", file=sys.stderr)
    genlab = str(Path(sys.executable).with_name("genlab"))
    train = [genlab, "train", "model=dcgan", "data=folder", f"data.root={root}", f"data.image_size={args.size}",
             f"paths.cache_dir={cache}", "data.val_size=0", "data.batch_size=64", f"trainer.max_steps={args.steps}",
             "trainer.max_epochs=-1", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
             "callbacks.sample_quality=null", "callbacks.sample_grid=null", "model.net.generator.base_channels=8",
             "model.net.discriminator.base_channels=8", "logger=csv"]
    for setting in ("true", "false"):
        results[f"train_in_memory_{setting}"] = run_measured(
            [*train, f"data.in_memory={setting}", f"hydra.run.dir={work / ('run_' + setting)}"], work)
        print(f"in_memory={setting}: {results[f'train_in_memory_{setting}']}", file=sys.stderr)
    if args.limit_mb:
        prefix, group = cgroup_prefix(args.limit_mb, "genlab_folder_memory")
        try:
            measured = run_measured([*train, "data.in_memory=auto", f"hydra.run.dir={work / 'run_cgroup'}"], work, prefix)
            peak_file = group / ("memory.peak" if (group / "memory.peak").exists() else "memory.max_usage_in_bytes")
            measured["cgroup_limit_mb"] = args.limit_mb
            measured["cgroup_peak_mb"] = int(peak_file.read_text()) / 2**20 if peak_file.exists() else None
            results["train_in_cgroup"] = measured
            print(f"in a {args.limit_mb} MB cgroup: {measured}", file=sys.stderr)
        finally:
            if not (group / "cgroup.procs").read_text().split():  # empty once the run has ended
                group.rmdir()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
