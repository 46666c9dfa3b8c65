"""Every bad input a user can give is refused in one line that names it, and leaves everything as it was.

Each case runs the real `genlab` command line (in this process: tests/conftest.py's run_genlab) in a
fresh folder and checks what the user sees (a non-zero exit, one `genlab: error:` line naming the key
or file, or Hydra's own paragraph for an unknown option or key; never a traceback, nor a warning) and
what stays on disk (no run folder, no half-downloaded data, every file given on the command line
unchanged byte for byte).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from tests.conftest import make_mnist, run_genlab

# Downloads go through a proxy on a closed local port: they fail at once, with or without a network.
OFFLINE = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
# data=mnist with no data anywhere: whatever gets past the value checks stops at the data, before training
MNIST_NOWHERE = ("data=mnist", "paths.data_dir={empty}")


def train(*overrides: str) -> tuple[str, ...]:
    return ("train", *MNIST_NOWHERE, *overrides)


def case(name: str, args: tuple[str, ...], names: str, hydra: bool = False, slow: bool = False) -> object:
    """One bad input: the command line after `genlab` ({placeholders} name the files `made` makes) and
    the text the error must hold (the key, value or file); `hydra`: Hydra's own error paragraph; `slow`: it
    loads data and builds the model before it is refused (the edit loop leaves it out)."""
    return pytest.param(args, names, hydra, id=name, marks=[pytest.mark.slow] if slow else [])


def again(name: str, args: tuple[str, ...], names: str, hydra: bool = False) -> object:
    """A case whose path another case already takes in the edit loop (one more value refused by its declared
    schema, as tests/test_schema.py refuses each in-process): the full suite runs it, `make test-fast` does not."""
    return case(name, args, names, hydra, slow=True)


CASES = [
    # values, refused by key before any data is read
    case("lr-not-a-number", train("optimizer.lr=abc"), "optimizer.lr='abc' is not valid: it must be a positive number"),
    again("lr-negative", train("optimizer.lr=-1"), "optimizer.lr=-1 is not valid"),
    again("batch-size-zero", train("data.batch_size=0"), "data.batch_size=0 is not valid: it must be a positive integer"),
    again("val-size-negative", train("data.val_size=-3"), "data.val_size=-3 is not valid"),
    again("max-epochs-zero", train("trainer.max_epochs=0"), "trainer.max_epochs=0 is not valid"),
    again("n-critic-zero", train("model.n_critic=0"), "model.n_critic=0 is not valid"),
    again("latent-dim-zero", train("model.latent_dim=0"), "model.latent_dim=0 is not valid"),
    again("on-nonfinite-unknown", train("on_nonfinite=x"), "on_nonfinite='x' is not valid: it must be stop or skip"),
    again("compile-not-a-bool", train("speed.compile=yes"), "speed.compile='yes' is not valid: it must be true or false"),
    again("seed-not-a-number", train("seed=abc"), "seed='abc' is not valid: it must be an integer"),
    again("gradient-penalty-negative", train("model=wgan_gp", "model.regularizers.gradient_penalty.weight=-1"),
         "model.regularizers.gradient_penalty.weight=-1 is not valid"),
    again("kl-weight-negative", train("model=vae", "model.kl_weight=-1"), "model.kl_weight=-1 is not valid"),
    again("budget-zero", train("budget.generator_steps=0"), "budget.generator_steps=0 is not valid"),
    case("loss-unknown", train("model.loss=wgann"), "model.loss='wgann' is not a known adversarial loss"),
    again("likelihood-unknown", train("model=vae", "model.likelihood=poisson"), "model.likelihood='poisson' is not known"),
    again("norm-unknown", train("model.net.discriminator.norm=weird"), "model.net.discriminator.norm='weird'"),
    # option and key names: Hydra's own paragraph lists the valid options
    case("model-unknown", train("model=wgann"), "Could not find 'model/wgann'", hydra=True),
    case("data-unknown", ("train", "data=imagenet"), "Could not find 'data/imagenet'", hydra=True),
    case("optimizer-unknown", train("optimizer=adamw"), "Could not find 'optimizer/adamw'", hydra=True),
    case("key-misspelt", train("model.lattent_dim=8"), "Could not override 'model.lattent_dim'", hydra=True),
    # data: missing, broken, or a download that cannot happen
    case("mnist-missing", train(), "MNIST not found: looked in {empty}/MNIST/raw"),
    case("mnist-truncated", ("train", "data=mnist", "paths.data_dir={broken_mnist}"), "train-images-idx3-ubyte"),
    case("mnist-download-offline", train("data.download=true"), "data.download=true: downloading MNIST failed"),
    case("cifar10-download-offline", ("train", "data=cifar10", "paths.data_dir={empty}", "data.download=true"),
         "downloading CIFAR10 failed"),
    # folders
    case("log-dir-under-a-file", train("paths.log_dir={a_file}/outputs"), "cannot write to the run folder {a_file}/outputs"),
    case("disk-full", train("paths.min_free_mb=1e15"), "less than paths.min_free_mb="),
    # checkpoints to resume from
    case("train-checkpoint-missing", train("ckpt_path={run}/checkpoints/missing.ckpt"),
         "checkpoint {run}/checkpoints/missing.ckpt does not exist"),
    case("train-checkpoint-is-text", train("ckpt_path={run}/checkpoints/notes.ckpt"),
         "{run}/checkpoints/notes.ckpt is not a checkpoint: it begins with"),
    case("train-checkpoint-truncated", train("ckpt_path={run}/checkpoints/truncated.ckpt"),
         "{run}/checkpoints/truncated.ckpt is truncated or not a checkpoint"),
    case("train-checkpoint-unsafe", train("ckpt_path={evil}"), "refusing to load {evil}"),
    case("train-checkpoint-of-a-vae", train("ckpt_path={run}/checkpoints/vae.ckpt"), "ckpt_path={run}/checkpoints/vae.ckpt does not fit"),
    # checkpoints to evaluate
    case("eval-without-checkpoint", ("eval",), "ckpt_path is required"),
    case("eval-checkpoint-missing", ("eval", "ckpt_path={run}/checkpoints/missing.ckpt"),
         "ckpt_path={run}/checkpoints/missing.ckpt: the checkpoint does not exist"),
    case("eval-checkpoint-outside-a-run", ("eval", "ckpt_path={loose}"), "ckpt_path must point into the checkpoints/ folder"),
    case("eval-checkpoint-is-text", ("eval", "ckpt_path={run}/checkpoints/notes.ckpt"),
         "{run}/checkpoints/notes.ckpt is not a checkpoint: it begins with"),
    case("eval-checkpoint-of-a-vae", ("eval", "ckpt_path={run}/checkpoints/vae.ckpt"),
         "ckpt_path={run}/checkpoints/vae.ckpt does not fit the model its run's config builds"),
    case("sample-checkpoint-of-other-shapes", ("sample", "ckpt_path={run}/checkpoints/small.ckpt"),
         "ckpt_path={run}/checkpoints/small.ckpt does not fit the model its run's config builds"),
    # every key of every command, checked against its declared schema before anything starts (genlab/schema/)
    case("sample-n-zero", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "n=0"), "n=0 is not valid"),
    again("sample-nrow-zero", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "nrow=0"), "nrow=0 is not valid"),
    again("sample-seed-not-a-number", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "seed=abc"), "seed='abc' is not valid"),
    again("sample-ema-maybe", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "ema=maybe"),
         "ema='maybe' is not valid: it must be true or false"),
    case("sample-key-forced-in", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "+steps=5"),
         "steps is not a key of genlab sample's config"),
    again("sample-device-unknown", ("sample", "ckpt_path={run}/checkpoints/small.ckpt", "device=gpu0"), "device='gpu0'"),
    again("eval-n-samples-zero", ("eval", "ckpt_path={run}/checkpoints/small.ckpt", "n_samples=0"), "n_samples=0 is not valid"),
    again("eval-n-samples-not-a-number", ("eval", "ckpt_path={run}/checkpoints/small.ckpt", "n_samples=abc"),
         "n_samples='abc' is not valid"),
    again("eval-batch-size-zero", ("eval", "ckpt_path={run}/checkpoints/small.ckpt", "batch_size=0"), "batch_size=0 is not valid"),
    case("eval-split-unknown", ("eval", "ckpt_path={run}/checkpoints/small.ckpt", "split=nope"),
         "split='nope' is not valid: it must be one of train, val, test"),
    again("eval-is-splits-zero", ("eval", "ckpt_path={run}/checkpoints/small.ckpt", "is_splits=0"), "is_splits=0 is not valid"),
    case("eval-ckpt-path-empty", ("eval", "ckpt_path="), "ckpt_path=''"),
    case("devices-beyond-the-cpu", train("trainer.devices=3"), "trainer.devices=3 on CPU processes needs DDP"),
    again("precision-unknown", train("trainer.precision=nonsense"), "trainer.precision='nonsense' is not valid"),
    case("gradient-clip-on-a-gan", train("+trainer.gradient_clip_val=1.0"), "use optimizer.clip_grad_norm"),
    again("betas-one-value", train("optimizer.betas=[0.5]"), "optimizer.betas=[0.5] is not valid: it must be a list of two"),
    again("min-free-mb-not-a-number", train("paths.min_free_mb=abc"), "paths.min_free_mb='abc' is not valid"),
    again("resume-in-misspelt", train("resume_in=samee"), "resume_in='samee' is not valid: it must be new or same"),
    again("train-batches-zero", train("trainer.limit_train_batches=0"), "trainer.limit_train_batches=0 is not valid"),
    again("val-size-one", train("data.val_size=1"), "data.val_size=1 is not valid"),
    case("cosine-without-an-epoch-count", train("optimizer/scheduler=cosine", "trainer.max_epochs=-1", "budget.images=64"),
         "optimizer.scheduler.T_max=-1 is not valid: it must be a positive integer (it follows trainer.max_epochs"),
    again("warmup-of-no-steps", train("optimizer/scheduler=warmup", "optimizer.scheduler.total_iters=0"),
         "optimizer.scheduler.total_iters=0 is not valid"),
    case("family-key-forced-in", train("+model.foo=1"), "model.foo is not an argument of genlab.families.gan.GAN"),
    again("trainer-key-forced-in", train("+trainer.foo=1"), "trainer.foo is not an argument of pytorch_lightning.Trainer"),
    case("resume-sweep-without-a-sweep", train("resume_sweep=true"), "resume_sweep=true continues a sweep: add -m"),
    case("sweep-with-one-bad-job", ("train", "-m", *MNIST_NOWHERE, "seed=1,abc"), "job 1 (seed=abc): seed='abc' is not valid"),
    case("resume-sweep-of-no-sweep", ("train", "-m", *MNIST_NOWHERE, "seed=1,2", "resume_sweep=true", "hydra.sweep.dir={empty}/x"),
         "hydra.sweep.dir={empty}/x holds no sweep"),
    case("new-sweep-over-a-folder", ("train", "-m", *MNIST_NOWHERE, "seed=1,2", "hydra.sweep.dir={run}"),
         "hydra.sweep.dir={run} already holds"),
    case("new-run-over-a-run", train("hydra.run.dir={run}"), "hydra.run.dir={run} already holds"),
    # what only the data can tell, still before training starts (mnist_mini: the digits that ship with genlab)
    case("fewer-classes-than-labels", ("train", "model=cgan", "data.num_classes=5"),
         "data.num_classes=5 but the train labels of MNISTMini go up to 9: set data.num_classes=10", slow=True),
    case("batch-larger-than-the-data", ("train", "data.batch_size=100000"),
         "data.batch_size=100000 is larger than the train split per process (4000 images)", slow=True),
    # sweeps and searches
    # (several processes on one machine start by DDP, which this in-process harness keeps out: nodes ask the same)
    case("ddp-inside-a-sweep", ("train", "-m", *MNIST_NOWHERE, "seed=1,2", "+trainer.num_nodes=2"),
         "trainer.devices=1 with trainer.num_nodes=2 in a sweep: each job trains in one process here"),
    case("ddp-inside-a-search", ("train", *MNIST_NOWHERE, "hparams_search=gan_optuna", "+trainer.num_nodes=2"),
         "trainer.num_nodes=2 in a sweep"),
    case("study-outside-outputs", ("train", *MNIST_NOWHERE, "hparams_search=gan_optuna", "hydra.sweeper.study_name=../../x"),
         "hydra.sweeper.study_name='../../x' is not valid"),
]


def composed(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        return compose("train", overrides=["data=mnist", *overrides])


def save_weights(cfg: DictConfig, path: Path) -> Path:
    from genlab.builder import build_module

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": build_module(cfg).state_dict(), "epoch": 0, "global_step": 0}, path)
    return path


class RunsCode:
    """Unpickled, it would create `marker`: the snapshot of every case would show it."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The files the cases point at: a DCGAN run folder holding checkpoints that are not its own, and more."""
    root = tmp_path_factory.mktemp("made")
    run = root / "gan_run"
    gan = composed()
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(gan, run / ".hydra" / "config.yaml")
    save_weights(composed("model=vae"), run / "checkpoints" / "vae.ckpt")
    save_weights(composed("model.latent_dim=8"), run / "checkpoints" / "small.ckpt")
    truncated = save_weights(gan, run / "checkpoints" / "truncated.ckpt")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    (run / "checkpoints" / "notes.ckpt").write_text("my notes about this run\n")
    loose = save_weights(gan, root / "elsewhere" / "last.ckpt")
    RunsCode.marker = str(root / "pwned")
    (root / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": RunsCode()}))
    (root / "empty").mkdir()
    (root / "a_file").write_text("")
    make_mnist(root / "broken_mnist", n_train=8, n_test=4)
    images = root / "broken_mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    return {"root": root, "run": run, "loose": loose, "evil": root / "evil.ckpt", "empty": root / "empty",
            "a_file": root / "a_file", "broken_mnist": root / "broken_mnist"}


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder below `folders`, with a hash of each file's bytes."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return found


@pytest.fixture
def offline(monkeypatch) -> None:
    """Outputs land in the command's folder (no GENLAB_* settings), and downloads fail at once."""
    for name in [name for name in os.environ if name.startswith("GENLAB_")]:
        monkeypatch.delenv(name)
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("args", "names", "hydra"), CASES)
def test_a_bad_input_is_refused_in_one_line_naming_it_and_leaves_everything_as_it_was(tmp_path, made, offline, args, names,
                                                                                      hydra):
    places = {name: str(path) for name, path in made.items()}
    before = snapshot(tmp_path, made["root"])
    result = run_genlab(*(arg.format(**places) for arg in args), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "UserWarning" not in output, "a refused input should not reach torch (or warn) first"
    if hydra:
        assert names in result.stderr and "genlab: error:" not in output
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
        assert len(errors) == 1, result.stderr
        assert output.count(errors[0].removeprefix("genlab: error:")) == 1, "the error is printed once, not logged too"
        assert names.format(**places) in result.stderr.split("genlab: error:", 1)[1], result.stderr
    assert snapshot(tmp_path, made["root"]) == before, "a refused command left something behind or changed a file"
