"""The image-to-image comparison of docs/translation.md: each family on each task over seeds, at one budget of
generator updates, judged by `genlab eval`'s protocol beside the task's do-nothing baseline.

Each study is one `genlab train -m` sweep (seed x task x model, run one job at a time, resumable: run the script
again and finished jobs are kept; STUDIES says which seeds each measured: 0, 1, 2 for the restoration families,
seed 0 alone for palette_flow, the colour task and CycleGAN, whose runs a 2-core CPU could not afford three
times), each job ending with `evaluate={n_samples: N}` (the test split's first N
images made into the task's pairs under eval's seed 0: every family and seed judged on the same inputs). Then:
<out>/table.md (mean ± std over seeds of the test/* and test_baseline/* numbers in each job's summary.json) and,
per task, <out>/<task>.png: the same test inputs, one row each, as input | each family's output (seed 0) | target.

    python scripts/translation_table.py                                   # every study: docs/translation/
    python scripts/translation_table.py --studies restoration --seeds 0 --steps 50 --eval-samples 100 \
        --out /tmp/translation_smoke --work /tmp/translation_smoke/runs   # checks the script in minutes

The budget counts generator updates (budget.generator_steps): one per batch for every family here, the
regressor's, pix2pix's generator's (one critic step each), the UNet's, CycleGAN's two generators' together.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

STUDIES: dict[str, dict[str, list]] = {
    # centre-box inpainting and x4 super-resolution: the paired families (palette_flow at seed 0 alone, for time)
    "restoration": {"seed": [0], "task": ["inpaint", "superres"],
                    "model": ["regress", "pix2pix", "palette", "palette_flow"]},
    "restoration_seeds": {"seed": [1, 2], "task": ["inpaint", "superres"], "model": ["regress", "pix2pix", "palette"]},
    # random colours from grey: what a pixel loss does to colour, and what the sharp families do instead
    "colour": {"seed": [0], "task": ["colorize_digits"], "model": ["regress", "pix2pix", "palette"]},
    # unpaired styles: CycleGAN
    "unpaired": {"seed": [0], "task": ["restyle"], "model": ["cyclegan"]},
}
METRICS = ("psnr", "ssim", "fid", "label_accuracy", "colourfulness", "diversity", "cycle_psnr")
# what the grey-trained domain classifier cannot judge, which the table leaves out: it sees colour outputs of grey
# data as their luma. colorize_digits: the grey input is that luma exactly (the baseline's FID is 0) and its random
# contrast is mostly misread, so FID and label accuracy say nothing of colour (colourfulness does); restyle: style
# B's dark digits on light ground invert MNIST's contrast, so the classifier misreads even the targets' classes
SHAPE_BLIND = {"colorize_digits": ("fid", "label_accuracy"), "restyle": ("label_accuracy",)}


def sweep(study: str, args: argparse.Namespace) -> Path:
    """Run (or go on with) one study's sweep; its folder."""
    folder = args.work / study
    grid = STUDIES[study]
    command = [
        str(Path(sys.executable).parent / "genlab"), "train", "-m",
        f"seed={','.join(map(str, args.seeds or grid['seed']))}",
        f"task={','.join(grid['task'])}", f"model={','.join(grid['model'])}", "data=mnist_mini",
        "trainer.max_epochs=-1", f"budget.generator_steps={args.steps}", f"trainer.check_val_every_n_epoch={args.val_every}",
        f"callbacks.translation_quality.n_samples={args.val_samples}", "logger=csv", "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null", f"evaluate={{n_samples:{args.eval_samples}}}", f"hydra.sweep.dir={folder}",
        # a sweep begun before goes on: its completed jobs are kept, an unfinished one resumes from its checkpoint
        *(["resume_sweep=true"] if (folder / "multirun.yaml").is_file() else []),
    ]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return folder


def choice(overrides: list[str], key: str) -> str:
    return next(o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}="))


def runs(folder: Path) -> list[dict[str, Any]]:
    """Each completed job: its task, model, seed, run folder and summary metrics."""
    found = []
    for summary in sorted(folder.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        if data.get("status") != "completed":
            continue
        overrides = data.get("overrides", [])
        found.append({"task": choice(overrides, "task"), "model": choice(overrides, "model"),
                      "seed": int(choice(overrides, "seed")), "dir": summary.parent, "metrics": data["metrics"]})
    return found


def mean_std(values: list[float]) -> str:
    """`mean ± std` over seeds; one value where there is one (a baseline is the same for every seed)."""
    if not values:
        return "-"
    if len(set(values)) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def table(found: list[dict[str, Any]], steps: int) -> str:
    lines = []
    for task in dict.fromkeys(run["task"] for run in found):
        of_task = [run for run in found if run["task"] == task]
        shown = [m for m in METRICS if any(f"test/{m}" in run["metrics"] for run in of_task)
                 and m not in SHAPE_BLIND.get(task, ())]
        seeds = sorted({run["seed"] for run in of_task})
        lines += [f"### task={task}", "",
                  f"{steps} generator updates; seeds {', '.join(map(str, seeds))}; mean ± std over a row's seeds", "",
                  "| model | seeds | " + " | ".join(m.replace("_", " ") for m in shown) + " |",
                  "|---|---|" + "---|" * len(shown)]
        rows = {"baseline (no model)": [run for run in of_task if run["model"] == of_task[0]["model"]]}
        for model in dict.fromkeys(run["model"] for run in of_task):
            rows[model] = sorted((run for run in of_task if run["model"] == model), key=lambda run: run["seed"])
        if "colourfulness" in shown:
            targets = [run["metrics"]["test/target_colourfulness"] for run in of_task if "test/target_colourfulness" in run["metrics"]]
            lines.insert(len(lines) - 2, f"The targets' colourfulness: {mean_std(targets)}.\n")
        for name, group in rows.items():
            prefix = "test_baseline/" if name.startswith("baseline") else "test/"
            cells = [mean_std([run["metrics"][prefix + key] for run in group if prefix + key in run["metrics"]])
                     for key in shown]
            seeds_of_row = "-" if name.startswith("baseline") else ", ".join(str(run["seed"]) for run in group)
            lines.append(f"| {name} | {seeds_of_row} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def session_paths(run_dir: Path) -> Any:
    """configs/paths/default.yaml's folders for a run loaded outside a genlab command (started here)."""
    from omegaconf import OmegaConf

    root = Path.cwd()
    return OmegaConf.create({
        "root_dir": str(root), "data_dir": os.environ.get("GENLAB_DATA_DIR", str(root / "data")),
        "log_dir": os.environ.get("GENLAB_OUTPUT_DIR", str(root / "outputs")), "output_dir": str(run_dir),
        "cache_dir": os.environ.get("GENLAB_CACHE_DIR", str(root / ".cache" / "genlab")), "min_free_mb": 200})


def figure(found: list[dict[str, Any]], out: Path, rows: int) -> None:
    """<out>/<task>.png: the test split's first `rows` inputs (eval's pairs), input | each family's output | target."""
    import torch
    from torchvision.utils import save_image

    from genlab.builder import build_datamodule
    from genlab.data.datamodule import to_signed_unit
    from genlab.generation import as_picture
    from genlab.run.load import load_model, load_run_config

    for task in dict.fromkeys(run["task"] for run in found):
        first = {run["model"]: run for run in found if run["task"] == task and run["seed"] == 0}
        columns, pair = [], None
        for model, run in first.items():
            checkpoint = run["dir"] / "checkpoints" / "last.ckpt"
            cfg = load_run_config(checkpoint, session_paths(run["dir"]))
            module = load_model(checkpoint, cfg, "cpu")
            if pair is None:
                images = to_signed_unit(build_datamodule(cfg).split("test").images[:rows])
                pair = module.family.task.fixed_pair(images, 0)
                columns.append(module.family.task.visible(pair.source))
            columns.append(module.sample(noise=pair.source, generator=torch.Generator().manual_seed(0)))
        if pair is None:
            continue
        columns.append(pair.target)
        channels = max(column.shape[1] for column in columns)
        grid = torch.stack([as_picture(column, channels) for column in columns], dim=1).flatten(0, 1)
        save_image(grid, out / f"{task}.png", nrow=len(columns), normalize=True, value_range=(-1, 1))
        print(f"{out / f'{task}.png'}: input | {' | '.join(first)} | target", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--seeds", nargs="+", type=int, help="every study's seeds (default: each study's own)")
    parser.add_argument("--steps", type=int, default=500, help="generator updates per run")
    parser.add_argument("--eval-samples", type=int, default=500, help="test inputs genlab eval judges")
    parser.add_argument("--val-samples", type=int, default=100, help="validation inputs behind val/* while training")
    parser.add_argument("--val-every", type=int, default=1,
                        help="epochs between validations (which also write last.ckpt: keep 1 with a budget)")
    parser.add_argument("--rows", type=int, default=8, help="inputs in each task's figure")
    parser.add_argument("--out", type=Path, default=Path("docs/translation"), help="the table and the figures")
    parser.add_argument("--work", type=Path, default=Path("outputs/translation"), help="the sweeps' run folders")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    found = []
    for study in args.studies:
        found += runs(sweep(study, args))
    (args.out / "table.md").write_text(table(found, args.steps))
    print((args.out / "table.md").read_text(), flush=True)
    figure(found, args.out, args.rows)


if __name__ == "__main__":
    main()
