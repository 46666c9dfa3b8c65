"""What multi-GPU and GPU training need beyond one CPU process: every tensor on the input's device, each DDP rank
its own noise with the weights in sync, decisions taken by every rank together, no collective that one rank runs
alone, each rank's random state in checkpoints, no host read per step, losses in float32 under mixed precision.

The DDP tests run `genlab train trainer=ddp_cpu`: two gloo processes on the CPU, which take DDP's code path."""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from genlab.augment import AdaptiveDiffAugment
from genlab.ema import ExponentialMovingAverage, measure_batch_norm_statistics
from genlab.errors import ConfigError, DivergenceError
from genlab.families.gan import GAN
from genlab.modules.guard import NonFiniteGuard
from genlab.modules.progress import random_state, restore_random_state, seed_rank, state_of_rank
from genlab.nets.mlp import Discriminator, Generator
from genlab.objectives import ADVERSARIAL_LOSSES, adversarial_loss
from genlab.regularizers import GradientPenalty, R1Penalty, WeightClipping, check_sync_batchnorm
from tests.conftest import Finished, make_mnist

ROOT = Path(__file__).resolve().parents[1]
GENLAB = str(Path(sys.executable).parent / "genlab")
# two ranks of 5 batches of 8 digits an epoch (80 training digits), small nets, nothing judged
DDP = ("trainer=ddp_cpu", "data=mnist", "data.batch_size=8", "data.val_size=16", "trainer.limit_val_batches=1",
       "model.latent_dim=8", "model.net.generator.base_channels=8",
       "model.net.discriminator.base_channels=8", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
       "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "logger=csv")


def train_ddp(*args: str, cwd: Path, timeout: int = 240) -> Finished:
    """`genlab train <args>` as its own process group (rank 0 starts rank 1), killed whole if it outlives `timeout`:
    a desynchronised collective waits for ever. tests/ddp_probe.py is importable from both ranks."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    process = subprocess.Popen([GENLAB, "train", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"the DDP run still ran after {timeout} s (a rank waits for the other): {stderr[-2000:]}")
    return Finished(process.returncode, stdout, stderr)


def probe(path: Path, *options: str) -> tuple[str, ...]:
    return ("+callbacks.probe._target_=tests.ddp_probe.Probe", f"+callbacks.probe.path={path}",
            *(f"+callbacks.probe.{option}" for option in options))


def ranks(path: Path) -> list[dict]:
    return [torch.load(path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


def assert_same_parameters(first: dict, second: dict) -> None:
    assert first.keys() == second.keys() and first
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs between the ranks"


# --- 1. ADA on the critic's device ------------------------------------------------------


def test_ada_sums_its_signs_and_images_on_the_device_of_the_critics_scores():
    ada = AdaptiveDiffAugment(target=0.6, interval=2, speed_kimg=0.001)
    seen = []

    def reduce(totals: torch.Tensor) -> torch.Tensor:  # DDP's sum, which needs one device; answers r_t = 0.625
        seen.append(totals.device)
        return torch.tensor([20.0, 32.0])

    for step in (1, 2):  # `meta` stands for the GPU: a CPU tensor beside it would not stack
        ada.observe(torch.tensor(0.5, device="meta"), 16, step, reduce)
    assert seen == [torch.device("meta")]
    assert ada.p == 1.0  # r_t 0.625 > 0.6: p rises by 32 images / 1 image, to its bound


def test_a_gans_logged_augment_probability_is_on_the_critics_device():
    gan = GAN({"generator": Generator(8, (1, 4, 4), hidden=(8,)), "discriminator": Discriminator((1, 4, 4), hidden=(8,))},
              latent_dim=8, augment=AdaptiveDiffAugment(interval=4))
    logs = gan.observe(torch.tensor(0.5, device="meta"), 16, 1)
    assert logs["augment_p"].device == torch.device("meta")


# --- 2. each rank its own noise, the weights in sync; 5. each rank's random state --------


def test_seed_rank_gives_each_rank_its_own_stream_and_no_two_runs_of_a_seed_sweep_one_stream():
    def draws(seed: int, rank: int) -> tuple:
        seed_rank(seed, rank)
        return tuple(torch.randn(4).tolist()), float(np.random.rand()), random.random()

    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        assert draws(42, 1) == draws(42, 1)
        assert draws(42, 0)[0] != draws(42, 1)[0]
        assert draws(1, 1)[0] != draws(2, 0)[0]  # seed + rank would give seed=1's rank 1 seed=2's rank 0 stream
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def test_a_rank_saves_its_own_gpus_random_state_and_not_every_visible_ones(monkeypatch):
    def every_gpu() -> list:
        raise AssertionError("every visible GPU's state was read")

    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.tensor([device.index], dtype=torch.uint8))
    state = random_state(torch.device("cuda", 1))
    assert state["cuda"].tolist() == [1] and torch.equal(state["torch"], torch.get_rng_state())
    assert "cuda" not in random_state(torch.device("cpu"))


def test_an_earlier_checkpoints_list_of_gpu_states_restores_this_devices_alone_and_none_past_those_it_saw(monkeypatch):
    restored = []

    def every_gpu(states: list) -> None:
        raise AssertionError("every saved GPU state was restored (fails where fewer GPUs are visible)")

    monkeypatch.setattr(torch.cuda, "set_rng_state_all", every_gpu)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append((state.tolist(), device)))
    legacy = {"torch": torch.get_rng_state(), "cuda": [torch.tensor([gpu], dtype=torch.uint8) for gpu in (0, 1)]}
    restore_random_state(legacy, torch.device("cuda", 1))
    restore_random_state(legacy, torch.device("cuda", 3))  # the checkpoint saw two GPUs
    restore_random_state({**legacy, "cuda": torch.tensor([7], dtype=torch.uint8)}, torch.device("cuda", 0))
    assert restored == [([1], torch.device("cuda", 1)), ([7], torch.device("cuda", 0))]


def test_each_rank_restores_its_own_saved_state_and_an_earlier_checkpoints_only_on_rank_0():
    first, second = {"torch": torch.zeros(1)}, {"torch": torch.ones(1)}
    assert state_of_rank({"ranks": [first, second]}, 1) is second
    assert state_of_rank({"ranks": [first, second]}, 2) is None  # more ranks now: the new one keeps its own seeding
    assert state_of_rank(first, 0) is first and state_of_rank(first, 1) is None
    assert state_of_rank(None, 0) is None


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> SimpleNamespace:
    """One DDP run of 2 epochs that both tests below read (each DDP launch costs two interpreters' start): rank 1
    alone gets a NaN critic loss at its second critic step, under on_nonfinite=skip. Its probe's records are read
    right after it, as the resume below writes its own to the same folder."""
    folder = tmp_path_factory.mktemp("ddp_run")
    make_mnist(folder / "data", n_train=96)
    run, seen = folder / "run", folder / "probe"
    first = train_ddp(*DDP, f"paths.data_dir={folder / 'data'}", "on_nonfinite=skip", "trainer.max_epochs=2",
                      *probe(seen, "nan_rank=1", "nan_critic_step=2"), f"hydra.run.dir={run}", cwd=folder)
    assert first.returncode == 0, first.stderr[-3000:]
    return SimpleNamespace(folder=folder, run=run, seen=seen, ranks=ranks(seen))


@pytest.mark.slow
def test_ddp_ranks_draw_their_own_noise_keep_one_set_of_weights_and_each_resumes_its_own_random_state(ddp_run):
    run, seen, tmp_path = ddp_run.run, ddp_run.seen, ddp_run.folder
    rank0, rank1 = ddp_run.ranks
    assert rank0["rank"] == 0 and rank1["rank"] == 1
    assert not torch.equal(rank0["noise"], rank1["noise"]), "both ranks drew the same latents"
    assert_same_parameters(rank0["parameters"], rank1["parameters"])

    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["random_state"]["ranks"]
    assert len(saved) == 2 and not torch.equal(saved[0]["torch"], saved[1]["torch"])
    for rank, record in enumerate((rank0, rank1)):
        assert torch.equal(saved[rank]["torch"], record["saved_states"][-1]), f"rank {rank}'s state at its last save"

    resumed = train_ddp(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3", "trust_run=true",
                        f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)  # trust: it names the probe's code
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank, record in enumerate(ranks(seen)):  # the resumed run's probe writes to the same folder
        assert torch.equal(record["first_step_state"], saved[rank]["torch"]), f"rank {rank} restored another's state"


@pytest.mark.slow
def test_a_critic_loss_not_finite_on_one_ddp_rank_is_skipped_by_both_and_the_run_goes_on(ddp_run):
    rank0, rank1 = ddp_run.ranks
    assert rank0["skipped_steps"] == rank1["skipped_steps"] == 1
    assert_same_parameters(rank0["parameters"], rank1["parameters"])
    # the run went on: both epochs trained after the skipped step
    assert torch.load(ddp_run.run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


# --- 3. a non-finite loss decided by every rank -------------------------------------------


def two_ranks(finite_elsewhere: bool, decisions: list) -> SimpleNamespace:
    """A trainer of two processes, the other of which found its loss finite or not."""

    def reduce_boolean_decision(decision: bool, all: bool = True) -> bool:
        decisions.append(decision)
        return decision and finite_elsewhere

    return SimpleNamespace(world_size=2, global_step=3, current_epoch=0, checkpoint_callback=None,
                           strategy=SimpleNamespace(reduce_boolean_decision=reduce_boolean_decision))


def test_a_finite_loss_is_skipped_or_stops_where_another_rank_found_its_own_not_finite():
    decisions: list = []
    assert not NonFiniteGuard("skip").allows("train/d_loss", torch.tensor(1.0), two_ranks(False, decisions))
    with pytest.raises(DivergenceError, match="train/d_loss became non-finite on another DDP process at step 3"):
        NonFiniteGuard("stop").allows("train/d_loss", torch.tensor(1.0), two_ranks(False, decisions))
    assert NonFiniteGuard("skip").allows("train/d_loss", torch.tensor(1.0), two_ranks(True, decisions))
    assert not NonFiniteGuard("skip").allows("train/d_loss", torch.tensor(float("inf")), two_ranks(True, decisions))
    assert decisions == [True, True, True, False]  # each rank's own verdict goes into the vote


# --- 4. SyncBatchNorm: no double backward, no collective on one rank -----------------------


def critic(norm: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), norm, nn.Linear(6, 1))


def test_a_gradient_penalty_on_a_batch_norm_critic_is_refused_by_key_where_ddp_synchronises_batch_norm():
    ddp = {"sync_batchnorm": True, "devices": 2}
    for penalty in (GradientPenalty(), R1Penalty()):
        gan = SimpleNamespace(discriminator=critic(nn.BatchNorm1d(6)), regularizers={"penalty": penalty})
        with pytest.raises(ConfigError, match=r"model.regularizers.penalty differentiates the critic twice.*"
                                              r"trainer.sync_batchnorm=false.*model.net.discriminator.norm=layer"):
            check_sync_batchnorm(gan, ddp)
        with pytest.raises(ConfigError):  # devices: auto or -1, counted by Lightning: may be several
            check_sync_batchnorm(gan, {"sync_batchnorm": True, "devices": "auto"})
        for fits in ({**ddp, "sync_batchnorm": False}, {**ddp, "devices": 1}, {**ddp, "devices": [3]}, None):
            check_sync_batchnorm(gan, fits)  # one process: SyncBatchNorm is plain batch norm there
    check_sync_batchnorm(SimpleNamespace(discriminator=critic(nn.BatchNorm1d(6)),
                                         regularizers={"weight_clipping": WeightClipping()}), ddp)
    check_sync_batchnorm(SimpleNamespace(discriminator=critic(nn.LayerNorm(6)),
                                         regularizers={"penalty": GradientPenalty()}), ddp)
    check_sync_batchnorm(SimpleNamespace(), ddp)  # a family with no critic


@pytest.mark.slow
def test_ddp_with_sync_batchnorm_refuses_a_gradient_penalty_on_a_batch_norm_critic_in_one_line(tmp_path):
    make_mnist(tmp_path / "data", n_train=96)
    result = train_ddp(*DDP, f"paths.data_dir={tmp_path / 'data'}", "model=wgan_gp", "model.net.discriminator.norm=batch",
                       "trainer.max_epochs=1", "+trainer.sync_batchnorm=true", f"hydra.run.dir={tmp_path / 'run'}",
                       cwd=tmp_path, timeout=180)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
    assert errors and "model.regularizers.gradient_penalty differentiates the critic twice" in errors[0]
    assert "trainer.sync_batchnorm=false" in errors[0]


def test_standing_statistics_under_sync_batchnorm_are_this_processes_own_as_plain_batch_norms(tmp_path):
    """Rank 0 measures them alone for the sample grid: through SyncBatchNorm's collectives it would wait for ever
    (on the CPU SyncBatchNorm refuses at once, which shows the same road)."""
    plain = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(plain))
    batches = [torch.randn(8, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for network in (plain, synced):
            feed = iter(batches)
            measure_batch_norm_statistics(network, lambda: network(next(feed)), len(batches))
    finally:
        torch.distributed.destroy_process_group()
    with torch.no_grad():  # the plain mean over the batches of each batch's mean and (unbiased) variance
        features = [plain[0](batch) for batch in batches]
    assert torch.allclose(synced[1].running_mean, torch.stack([f.mean(0) for f in features]).mean(0), atol=1e-6)
    assert torch.allclose(synced[1].running_var, torch.stack([f.var(0) for f in features]).mean(0), atol=1e-6)
    assert torch.allclose(plain[1].running_mean, synced[1].running_mean, atol=1e-6)
    assert "forward" not in vars(synced[1]), "SyncBatchNorm synchronises again after the measurement"


# --- 6. no host read per step; losses in float32 ---------------------------------------------


def no_host_reads(monkeypatch) -> None:
    def read_back(*args, **kwargs):
        raise AssertionError("a training step read a tensor back to the host (a GPU sync)")

    for name in ("item", "__bool__", "__int__", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, read_back)


def test_an_ema_update_reads_nothing_back_from_the_device_and_counts_on_after_a_load(monkeypatch):
    network = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ExponentialMovingAverage(network, decay=0.9, warmup=1, rampup=0.5)
    weights = []
    with monkeypatch.context() as patched:
        no_host_reads(patched)
        for _ in range(2):
            with torch.no_grad():
                for parameter in network.parameters():
                    parameter.add_(1.0)
                network[1].running_mean.add_(2.0)
            weights.append([p.detach().clone() for p in network.parameters()])
            ema.update(network)
    # update 1 copies (warmup); update 2 keeps min(0.9, 0.5 ** (1 / (0.5 * 2))) = 0.5 of the average
    for averaged, first, second in zip(ema.averaged.module.parameters(), *weights):
        assert torch.allclose(averaged, 0.5 * first + 0.5 * second)
    assert torch.equal(ema.averaged.module[1].running_mean, network[1].running_mean)
    fresh = ExponentialMovingAverage(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), decay=0.9, warmup=1, rampup=0.5)
    fresh.load_state_dict(ema.state_dict())
    assert ema.updates == fresh.updates == 2 and fresh.decay_at(fresh.updates + 1) == min(0.9, 0.5 ** (1 / 1.5))


def test_an_ict_training_batch_reads_nothing_back_from_the_device_and_its_curriculum_resumes(monkeypatch):
    from genlab.families.consistency import ConsistencyTraining
    from tests.test_few_step import SHAPE, unet

    family = ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=80, start_steps=10, end_steps=40)
    images = torch.rand(2, *SHAPE) * 2 - 1
    with monkeypatch.context() as patched:
        no_host_reads(patched)
        for _ in range(27):
            family.loss(images, None)
    assert int(family.iterations) == 27 and family.discretisation() == 21
    fresh = ConsistencyTraining({"denoiser": unet()}, SHAPE, curriculum_steps=80, start_steps=10, end_steps=40)
    fresh.load_state_dict(family.state_dict())
    assert fresh.discretisation() == 21  # the count read back once, after the load


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_adversarial_loss_is_computed_on_float32_scores_under_mixed_precision(dtype):
    # a least-squares critic's 300 squared is 89401: past float16's largest number, 65504
    real, fake = torch.tensor([300.0, -2.0, 0.5]).to(dtype), torch.tensor([-280.0, 1.0, 0.25]).to(dtype)
    for name, exact in ADVERSARIAL_LOSSES.items():
        loss = adversarial_loss(name)
        critic, generator = loss.discriminator(real, fake), loss.generator_loss(fake, real)
        assert critic.dtype == generator.dtype == torch.float32, name
        assert torch.allclose(critic, exact.discriminator(real.float(), fake.float())), name
        assert torch.allclose(generator, exact.generator_loss(fake.float(), real.float())), name
