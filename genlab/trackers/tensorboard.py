"""TensorBoard's part: the grids as images, and the HPARAMS tab's row of a completed run."""

from __future__ import annotations

from typing import Any

from genlab.trackers import Final


def image(logger: Any, tag: str, grid: Any, step: int) -> None:
    logger.experiment.add_image(tag, grid, global_step=step)


def final(logger: Any, run: Final) -> None:
    """The HPARAMS summary: its columns are the run's settings, and its metric columns read the last value of each
    scalar the run logged (the values given here are placeholders TensorBoard does not show)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    writer = logger.experiment._get_file_writer()
    for summary in hparams_summary(run.hparams, {name: 0.0 for name in run.curves}):
        writer.add_summary(summary)
    logger.experiment.flush()
