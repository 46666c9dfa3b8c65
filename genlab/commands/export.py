"""`genlab export ckpt_path=... out=<folder>`: a trained run as a self-contained folder another machine, notebook or
model hub can use without the run folder (genlab/export/: the layout, the writer, the model card, ONNX).

The checkpoint's run is loaded as `genlab sample` loads it (genlab/api/), its out folder refused at once when it
holds anything, and the export is loaded back and checked to sample alike before it is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from genlab.api.loading import checkpoint_run
from genlab.commands.app import Job, hydra_app, sampler_options
from genlab.export.write import check_out
from genlab.run.load import load_run_config
from genlab.run.shell import command_line, shell_word

log = logging.getLogger("genlab")


def export(cfg: DictConfig) -> Path:
    """`genlab export`: the run rebuilt from its checkpoint, written as a new folder `out`, which it returns."""
    from genlab.builder import resolve_device

    run_cfg = load_run_config(cfg.ckpt_path, cfg.paths, trust_run=cfg.trust_run)
    out = Path(cfg.out).expanduser()
    check_out(out)
    run = checkpoint_run(cfg.ckpt_path, run_cfg, device=resolve_device(cfg.device), trust_run=cfg.trust_run)
    written = run.export(out, format=cfg.format, n=cfg.n, nrow=cfg.nrow, seed=cfg.seed, sampler=sampler_options(cfg),
                         licence=cfg.licence)
    log.info("exported to %s (its README.md is the model card)", written)
    code = f"import genlab; run = genlab.load({str(written)!r}); print(run.sample(4, seed=0).shape)"
    log.info("load it:    %s", command_line(["python", "-c", code]))
    log.info("upload it:  hf upload <user>/<model> %s .   (huggingface_hub's CLI; not tested by genlab)",
             shell_word(str(written)))
    return written


@hydra_app("export")
def main(cfg: DictConfig, job: Job) -> None:
    export(cfg)
