"""MLflow's part (`logger=mlflow`): Lightning's logger, refused in one line without the package; the grids as
images on MLflow's step slider; the settings as params and the final metrics at the last step."""

from __future__ import annotations

from functools import wraps
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger as LightningMLFlowLogger

from genlab.trackers import Final, require_package, to_pixels


class MLflowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger, with its arguments (configs/logger/mlflow.yaml), once mlflow is installed; the jobs of
    a parallel sweep share their experiment, whichever creates it."""

    @wraps(LightningMLFlowLogger.__init__)  # its signature: genlab's schema checks the YAML's keys against it
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        require_package("mlflow", "mlflow", "mlflow-skinny")
        super().__init__(*args, **kwargs)

    @property
    def experiment(self) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return super().experiment
        except MlflowException as error:
            # the sweep's jobs in parallel processes (hydra/launcher=parallel): another one created the experiment
            # between this one's look-up and its creation; the next look-up finds it
            if error.error_code != "RESOURCE_ALREADY_EXISTS" or self._experiment_id is not None:
                raise
            return super().experiment


def image(logger: Any, tag: str, grid: Any, step: int) -> None:
    # by key and step, as TensorBoard keeps images: the run's artifacts images/<tag>+step+<step>+...png
    logger.experiment.log_image(logger.run_id, to_pixels(grid), key=tag, step=step)


def final(logger: Any, run: Final) -> None:
    logger.log_hyperparams(run.hparams)
    logger.log_metrics(run.metrics, step=run.step)
