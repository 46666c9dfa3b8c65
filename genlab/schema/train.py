"""The declared schema of `genlab train`'s config (configs/train.yaml and its groups).

Each key says what it accepts; keys that Lightning or torch read directly are declared here too, so that
a value they would refuse with a traceback is refused first, by key. A family's own keys (`model.*`) are
its constructor's arguments: any other is refused here, their values by the family where it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from genlab.schema.rules import (Rule, anything, boolean, choice, either, integer, mapping, nullable, number,
                                 sequence, text)
from genlab.schema.walk import Schema, key, node

POSITIVE = integer(1)
UNLIMITED_OR_POSITIVE = integer(1, also=(-1,), words="a positive integer (or -1: unlimited)")


@dataclass
class Budget(Schema):
    generator_steps: int = key(nullable(POSITIVE))
    images: int = key(nullable(POSITIVE))


@dataclass
class Speed(Schema):
    compile: bool = key(boolean())
    compile_options: dict = key(nullable(mapping()))
    channels_last: bool = key(boolean())


@dataclass
class Paths(Schema):
    root_dir: str = key(text())
    data_dir: str = key(text())
    log_dir: str = key(text())
    output_dir: str = key(anything())
    cache_dir: str = key(text())
    min_free_mb: float = key(number(minimum=0))


@dataclass
class Classifier(Schema):
    """The domain classifier behind val/fid and genlab eval's CPU features (genlab/metrics/domain_classifier.py)."""

    epochs: int = key(POSITIVE)
    batch_size: int = key(POSITIVE)
    lr: float = key(number(above=0))
    base_channels: int = key(POSITIVE)
    feature_dim: int = key(POSITIVE)
    seed: int = key(integer())


@dataclass
class Data(Schema):
    extra = "target"
    _target_: str = key(text())
    name: str = key(nullable(text()))
    root: str = key(text())
    download: bool = key(boolean())
    image_shape: list = key(sequence(POSITIVE, 3, "a list of three positive integers [channels, height, width]"))
    num_classes: int = key(POSITIVE)
    batch_size: int = key(POSITIVE)
    # a covariance (val/fid of real held-out images) needs two images at least
    val_size: int = key(integer(2, also=(0,), words="0 (no validation split) or an integer >= 2"))
    seed: int = key(integer())
    drop_last: bool = key(boolean())


@dataclass
class Scheduler(Schema):
    """A learning-rate schedule: torch's arguments, and genlab's `interval`."""

    extra = "target"
    interval: str = key(choice("epoch", "step"))
    # a schedule's length: cosine and linear_decay follow trainer.max_epochs, which must then be set
    T_max: int = key(POSITIVE)
    total_iters: int = key(POSITIVE)
    eta_min: float = key(number(minimum=0))
    start_factor: float = key(number(above=0, maximum=1))
    end_factor: float = key(number(minimum=0, maximum=1))


@dataclass
class PlayerOptimizer(Schema):
    """One player's torch optimizer (a partial): its arguments are those its `_target_` takes."""

    extra = "target"


@dataclass
class Optimizer(Schema):
    """The top-level values each player takes unless set apart (`optimizer.discriminator.lr=...`)."""

    extra = "open"
    lr: float = key(number(above=0))
    betas: list = key(sequence(number(minimum=0, below=1), 2, "a list of two numbers in [0, 1), e.g. [0.5, 0.999]"))
    alpha: float = key(number(minimum=0, below=1))
    momentum: float = key(number(minimum=0))
    weight_decay: float = key(number(minimum=0))
    clip_grad_norm: float = key(nullable(number(above=0)))
    scheduler: Scheduler = node(Scheduler, nullable=True)
    generator: PlayerOptimizer = node(PlayerOptimizer)
    discriminator: PlayerOptimizer = node(PlayerOptimizer)


# EDM2's relative EMA length, in the range where its Algorithm 2 gives a gamma (genlab/posthoc_ema.py)
SIGMA_REL = number(above=0, below=0.28, words="a relative length in (0, 0.28), EDM2's sigma_rel, e.g. 0.1")
# two profiles at least: one cannot be combined into another (EDM2's Algorithm 3)
SIGMA_RELS = Rule(lambda value: isinstance(value, list) and len(value) >= 2 and len(set(value)) == len(value)
                  and all(SIGMA_REL(item) for item in value),
                  "a list of two or more distinct relative lengths in (0, 0.28), EDM2's sigma_rel, e.g. [0.05, 0.10]",
                  ("abc", [0.05, 0.5], [0.05]))


@dataclass
class PosthocEma(Schema):
    """model.ema.posthoc (genlab/posthoc_ema.py): EDM2's power-function averages and their snapshots."""

    sigma_rels: list = key(nullable(SIGMA_RELS))
    snapshot_every: int = key(POSITIVE)


@dataclass
class Ema(Schema):
    """model.ema (genlab/ema.py)."""

    decay: float = key(nullable(number(above=0, below=1)))
    warmup: int = key(integer(0))
    rampup: float = key(nullable(number(minimum=0)))
    standing_statistics: int = key(integer(0))
    standing_batch_size: int = key(POSITIVE)
    posthoc: PosthocEma = node(PosthocEma, nullable=True)


@dataclass
class Teacher(Schema):
    """model.teacher (genlab/run/teacher.py): the trained run a distilling family learns from."""

    ckpt_path: str = key(nullable(text()))
    ema: bool = key(boolean())
    sampler: dict = key(nullable(mapping()))
    trust_run: bool = key(boolean())


@dataclass
class Model(Schema):
    """A family: its arguments (and its nets', regularizers', augmentation's) are those its `_target_` takes."""

    extra = "target"
    _target_: str = key(text())
    ema: Ema = node(Ema, nullable=True)
    teacher: Teacher = node(Teacher, nullable=True)


@dataclass
class Task(Schema):
    """An image-to-image task (configs/task/, genlab/tasks/): its arguments are those its `_target_` takes."""

    extra = "target"
    _target_: str = key(text())


@dataclass
class Trainer(Schema):
    """Lightning's Trainer: the arguments genlab's configs set, declared; any other must be a Trainer argument."""

    extra = "target"
    _target_: str = key(text())
    default_root_dir: str = key(anything())
    accelerator: str = key(choice("auto", "cpu", "gpu", "cuda", "mps"))
    devices: int = key(either(POSITIVE, choice("auto"), sequence(integer(0), words="a list of device indices"),
                              words="a positive integer, auto, or a list of device indices"))
    strategy: str = key(text())
    num_nodes: int = key(POSITIVE)
    max_epochs: int = key(UNLIMITED_OR_POSITIVE)
    max_steps: int = key(UNLIMITED_OR_POSITIVE)
    # a fraction of the batches, or a number of them: 0 would train nothing
    limit_train_batches: float = key(either(number(above=0, maximum=1), POSITIVE,
                                            words="a fraction in (0, 1] or a positive number of batches"))
    limit_val_batches: float = key(either(number(minimum=0, maximum=1), integer(0),
                                          words="a fraction in [0, 1] or a number of batches"))
    check_val_every_n_epoch: int = key(nullable(POSITIVE))
    val_check_interval: float = key(nullable(either(number(above=0, maximum=1), POSITIVE)))
    log_every_n_steps: int = key(POSITIVE)
    enable_progress_bar: bool = key(boolean())
    enable_checkpointing: bool = key(boolean())
    precision: str = key(anything())  # against Lightning's own list: genlab/schema/machine.py
    benchmark: bool = key(nullable(boolean()))
    deterministic: bool = key(either(boolean(), choice("warn"), words="true, false or warn"))
    detect_anomaly: bool = key(boolean())
    gradient_clip_val: float = key(nullable(number(minimum=0)))
    gradient_clip_algorithm: str = key(nullable(choice("norm", "value")))
    accumulate_grad_batches: int = key(POSITIVE)
    overfit_batches: float = key(either(number(minimum=0, maximum=1), integer(0)))
    fast_dev_run: bool = key(either(boolean(), integer(0)))
    num_sanity_val_steps: int = key(integer(-1))
    plugins: list = key(anything())


@dataclass
class Built(Schema):
    """A mapping of named nodes (loggers, callbacks), each null (off) or built by its `_target_`."""

    extra = "targets"


@dataclass
class Train(Schema):
    task_name: str = key(text())
    seed: int = key(integer())
    ckpt_path: str = key(nullable(text()))
    resume_in: str = key(choice("new", "same"))
    resume_sweep: bool = key(boolean())
    on_nonfinite: str = key(choice("stop", "skip"))
    optimized_metric: str = key(nullable(text()))
    evaluate: dict = key(nullable(mapping()))
    tags: list = key(sequence(words="a list of words"))
    trust_run: bool = key(boolean())
    budget: Budget = node(Budget)
    speed: Speed = node(Speed)
    data: Data = node(Data)
    optimizer: Optimizer = node(Optimizer)
    model: Model = node(Model)
    task: Task = node(Task, nullable=True)
    trainer: Trainer = node(Trainer)
    logger: Built = node(Built, nullable=True)
    callbacks: Built = node(Built, nullable=True)
    classifier: Classifier = node(Classifier)
    paths: Paths = node(Paths)
