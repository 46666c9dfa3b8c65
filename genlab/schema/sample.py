"""The declared schemas of `genlab sample`'s and `genlab eval`'s configs (configs/sample.yaml, configs/eval.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.schema.rules import boolean, choice, device, integer, mapping, nullable, number, text
from genlab.schema.train import POSITIVE, SIGMA_REL, Classifier, Paths
from genlab.schema.walk import Schema, key, node


@dataclass
class Loading(Schema):
    """What both commands share: the run to load and how its model makes images."""

    task_name: str = key(text())
    ckpt_path: str = key(text())
    seed: int = key(integer())
    device: str = key(device())
    ema: bool = key(boolean())
    # EDM2's post-hoc EMA (genlab/run/posthoc_snapshots.py): the average's relative length, and at which step
    ema_length: float = key(nullable(SIGMA_REL))
    ema_step: int = key(nullable(integer(1, words="a generator step of one of the run's snapshots")))
    sampler: dict = key(nullable(mapping()))
    trust_run: bool = key(boolean())
    paths: Paths = node(Paths)


@dataclass
class Sample(Loading):
    n: int = key(POSITIVE)
    nrow: int = key(POSITIVE)
    n_interpolations: int = key(integer(0))
    # a walk between two draws needs both ends
    interpolation_steps: int = key(integer(2))
    trajectory_rows: int = key(POSITIVE)
    trajectory_frames: int = key(integer(2))
    outputs_per_input: int = key(POSITIVE)
    out: str = key(nullable(text()))


@dataclass
class Eval(Loading):
    # a covariance (FID) needs two images at least
    n_samples: int = key(integer(2))
    split: str = key(choice("train", "val", "test"))
    extractor: str = key(choice("auto", "inception", "classifier"))
    inception_weights: str = key(nullable(text()))
    batch_size: int = key(POSITIVE)
    kid_subsets: int = key(POSITIVE)
    kid_subset_size: int = key(integer(2))
    pr_k: int = key(POSITIVE)
    is_splits: int = key(POSITIVE)
    coverage_threshold: float = key(number(above=0, maximum=1))
    # image-to-image families that draw: outputs per input (1: no diversity measured), and how many inputs
    outputs_per_input: int = key(POSITIVE)
    diversity_inputs: int = key(POSITIVE)
    progress: bool = key(boolean())
    classifier: Classifier = node(Classifier)
