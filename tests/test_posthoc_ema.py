"""EDM2's post-hoc EMA (Karras et al. 2024, Section 3 and Appendix C): the power-function averages against their
closed form, an average of a third length rebuilt from two lengths' snapshots (Algorithm 3) against that average
computed directly, the snapshot files (safetensors, whole or absent, the same after a resume), and
`genlab eval/sample ... ema_length=...` on a run trained with snapshots."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from genlab.builder import build, build_module, build_trainer
from genlab.callbacks.posthoc_ema import PosthocEmaSnapshots
from genlab.errors import ConfigError
from genlab.posthoc_ema import (PosthocEMA, PowerFunctionEMA, Snapshot, build_posthoc_ema, combine, gamma_of,
                                power_beta, reconstruction_weights, sigma_rel_of)
from genlab.run.posthoc_snapshots import carry_snapshots, listed, reconstruct, snapshot_folder, write_snapshots
from tests.conftest import BARE, FAST, run_genlab

POSTHOC = ("model/ema=posthoc",)


class Vector(nn.Module):
    """A network that is one float64 parameter vector: theta_t set by hand, each entry a sequence of its own."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(n, dtype=torch.float64))

    def set(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self.theta.copy_(value)


# --- the power-function average (EDM2 eq. 3, Algorithm 2) ------------------------------------------------------------


def test_gamma_is_edm2s_for_its_sigma_rel_and_beta_is_the_power_function():
    # EDM2 trains with sigma_rel 0.05 and 0.10, "gamma = 16.97 and 6.94" (Appendix C.2)
    assert gamma_of(0.05) == pytest.approx(16.97, abs=0.005) and gamma_of(0.10) == pytest.approx(6.94, abs=0.005)
    for sigma_rel in (0.01, 0.05, 0.1, 0.2, 0.27):
        assert sigma_rel_of(gamma_of(sigma_rel)) == pytest.approx(sigma_rel, rel=1e-9)
    gamma = gamma_of(0.1)
    assert power_beta(1, gamma) == 0.0  # the first update copies the weights: theta_0 leaves no trace
    for t in (2, 10, 1000):
        assert power_beta(t, gamma) == pytest.approx((1 - 1 / t) ** (gamma + 1), rel=1e-15)


def test_the_average_weighs_each_update_by_the_integral_of_edm2s_profile_over_it():
    # theta_tau = e_tau (one-hot at tau): entry tau of the average is the weight of update tau, which must be
    # (tau^(g+1) - (tau-1)^(g+1)) / t^(g+1), the integral of p(tau) = (g+1) tau^g / t^(g+1) over [tau-1, tau]
    t = 2000
    network = Vector(t)
    average = PowerFunctionEMA(network, sigma_rel=0.1)
    for tau in range(t):
        network.set(torch.nn.functional.one_hot(torch.tensor(tau), t).double())
        average.update(network)
    weights, g = average.module.theta.detach(), average.gamma
    tau = torch.arange(1, t + 1, dtype=torch.float64)
    expected = (tau ** (g + 1) - (tau - 1) ** (g + 1)) / t ** (g + 1)
    torch.testing.assert_close(weights, expected, rtol=1e-9, atol=1e-15)
    assert average.t == t and int(average.updates) == t
    # its width relative to t is sigma_rel (the discrete profile's, to 0.1% at t = 2000)
    mean = (weights * (tau - 0.5)).sum()
    width = ((weights * (tau - 0.5 - mean) ** 2).sum()).sqrt() / t
    assert float(width) == pytest.approx(0.1, rel=1e-3)


def test_the_averages_copy_buffers_and_are_not_trained():
    network = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    posthoc = PosthocEMA(network, [0.05, 0.1], snapshot_every=1)
    with torch.no_grad():
        network[1].running_mean.fill_(3.0)
    posthoc.update(network)
    for average in posthoc.averages:
        assert torch.equal(average.module[1].running_mean, network[1].running_mean)
        assert not any(p.requires_grad for p in average.module.parameters())


@pytest.mark.parametrize(("options", "key"), [
    ({"sigma_rels": [0.05]}, "model.ema.posthoc.sigma_rels"),
    ({"sigma_rels": [0.05, 0.3]}, "model.ema.posthoc.sigma_rels"),
    ({"sigma_rels": [0.1, 0.1]}, "model.ema.posthoc.sigma_rels"),
    ({"sigma_rels": [0.05, 0.1], "snapshot_every": 0}, "model.ema.posthoc.snapshot_every"),
    ({"sigma_rels": [0.05, 0.1], "every": 10}, "model.ema.posthoc.every"),
])
def test_bad_posthoc_settings_are_refused_in_one_line_by_key(options, key):
    with pytest.raises(ConfigError, match=rf"^{key}") as refused:
        build_posthoc_ema(nn.Linear(1, 1), options)
    assert "\n" not in str(refused.value)


def test_off_unless_sigma_rels_are_set_and_independent_of_the_ema(compose_train):
    assert build_module(compose_train(*BARE)).posthoc_ema is None
    module = build_module(compose_train(*BARE, *POSTHOC))
    assert module.posthoc_ema.sigma_rels == [0.05, 0.1] and module.posthoc_ema.snapshot_every == 250
    assert module.ema is None
    assert build_module(compose_train(*BARE, *POSTHOC, "model.ema.decay=0.9")).ema.decay == 0.9


def test_a_checkpoint_of_other_lengths_is_refused_by_key():
    network = nn.Linear(2, 2)
    state = PosthocEMA(network, [0.05, 0.1]).state_dict()
    with pytest.raises(ConfigError, match=r"^model\.ema\.posthoc\.sigma_rels holds 0\.2 where the checkpoint"):
        PosthocEMA(network, [0.05, 0.2]).load_state_dict(state)


# --- Algorithm 3: a third length from two lengths' snapshots ----------------------------------------------------------


def thetas(t: int) -> torch.Tensor:
    """theta_tau for tau = 1..t, three sequences side by side: tau itself, a random walk, sin(tau / 50)."""
    tau = torch.arange(1, t + 1, dtype=torch.float64)
    walk = torch.randn(t, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).cumsum(0)
    return torch.stack([tau, walk, torch.sin(tau / 50)], dim=1)


def run_sequence(sigma_rels: list[float], t: int, every: int) -> tuple[list[Snapshot], dict[tuple[float, int], torch.Tensor]]:
    """`thetas(t)` fed to averages of `sigma_rels`: their snapshots every `every` updates, and each average at each
    step (the reference), by (sigma_rel, step)."""
    network = Vector(3)
    posthoc = PosthocEMA(network, sigma_rels, snapshot_every=every)
    snapshots, history = [], {}
    for tau, theta in enumerate(thetas(t), start=1):
        network.set(theta)
        posthoc.update(network)
        if posthoc.due(tau):
            snapshots += posthoc.snapshots(tau)
        for average in posthoc.averages:
            history[(average._sigma_rel, tau)] = average.module.theta.detach().clone()
    return snapshots, history


@pytest.mark.parametrize("at", [1000, 500])
def test_the_average_of_a_third_length_rebuilt_from_two_lengths_snapshots_is_that_average(at):
    # snapshots of sigma_rel 0.05 and 0.10 every 10 of 1000 updates rebuild sigma_rel 0.075, at the last step (100
    # snapshots of each) or an earlier one (50), to 1e-5 of each sequence's largest |theta| so far (measured: 2e-6
    # at most, at step 500; 4e-8 at step 1000). A least-squares fit, not an identity: fewer snapshots fit worse.
    snapshots, _ = run_sequence([0.05, 0.1], 1000, 10)
    _, reference = run_sequence([0.075, 0.2], 1000, 10)
    used = [s for s in snapshots if s.step <= at]
    weights = reconstruction_weights([s.t for s in used], [s.gamma for s in used], at, gamma_of(0.075))
    rebuilt = combine(used, weights.tolist(), {"theta"})["theta"]
    scale = thetas(at).abs().amax(0)
    assert ((rebuilt - reference[(0.075, at)]).abs() <= 1e-5 * scale).all(), (rebuilt, reference[(0.075, at)])


def test_a_trained_length_is_rebuilt_as_itself():
    snapshots, history = run_sequence([0.05, 0.1], 300, 30)
    weights = reconstruction_weights([s.t for s in snapshots], [s.gamma for s in snapshots], 300, gamma_of(0.1))
    torch.testing.assert_close(combine(snapshots, weights.tolist(), {"theta"})["theta"], history[(0.1, 300)],
                               rtol=1e-9, atol=1e-9)


# --- snapshot files ---------------------------------------------------------------------------------------------------


def snapshots_of(steps: int = 3) -> list[Snapshot]:
    network = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    posthoc = PosthocEMA(network, [0.05, 0.1], snapshot_every=steps)
    for _ in range(steps):
        with torch.no_grad():
            network[0].weight.add_(1.0)
        posthoc.update(network)
    return posthoc.snapshots(steps)


def test_snapshots_are_safetensors_named_by_length_and_step_with_their_profile_inside(tmp_path):
    snapshots = snapshots_of()
    written = write_snapshots(tmp_path, snapshots)
    assert sorted(p.name for p in written) == ["0.05-00000003.safetensors", "0.1-00000003.safetensors"]
    assert sorted(os.listdir(tmp_path / "posthoc_ema")) == sorted(p.name for p in written)  # no temporary file left
    for path, snapshot in zip(written, snapshots):
        header = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: a JSON header's length, no pickle
        assert path.read_bytes()[8:9] == b"{" and header > 0
        tensors = load_file(str(path))
        assert tensors.keys() == snapshot.tensors.keys()
        assert all(torch.equal(tensors[name], snapshot.tensors[name]) for name in tensors)
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        assert (float(meta["sigma_rel"]), int(meta["t"]), int(meta["generator_step"])) == (snapshot.sigma_rel, 3, 3)
        assert float(meta["gamma"]) == snapshot.gamma
    assert [(s.sigma_rel, s.step) for _, s in listed(tmp_path)] == [(0.05, 3), (0.1, 3)]


def test_a_snapshot_cut_short_leaves_the_earlier_file_whole_and_no_temporary_one(tmp_path, monkeypatch):
    first = write_snapshots(tmp_path, snapshots_of())[0]
    before = first.read_bytes()

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_snapshots(tmp_path, snapshots_of())
    assert first.read_bytes() == before
    assert sorted(os.listdir(first.parent)) == ["0.05-00000003.safetensors", "0.1-00000003.safetensors"]


def test_a_resumed_run_in_a_new_folder_takes_the_snapshots_up_to_its_checkpoint(tmp_path):
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    for steps in (3, 6):
        write_snapshots(earlier, snapshots_of(steps))
    assert carry_snapshots(earlier, later, up_to_step=4) == 2
    assert sorted(os.listdir(snapshot_folder(later))) == ["0.05-00000003.safetensors", "0.1-00000003.safetensors"]
    assert (snapshot_folder(later) / "0.1-00000003.safetensors").read_bytes() == \
        (snapshot_folder(earlier) / "0.1-00000003.safetensors").read_bytes()


# --- training: every snapshot_every generator steps, and the same after a resume ---------------------------------------


def fit(cfg, run_dir: Path, ckpt_path: str | None = None, callbacks=()) -> nn.Module:
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as genlab train does
    datamodule, module, _ = build(cfg)
    trainer = build_trainer(cfg, callbacks=[*callbacks, PosthocEmaSnapshots(run_dir)])
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module


def written_steps(run_dir: Path) -> list[tuple[float, int, int]]:
    return [(s.sigma_rel, s.step, s.t) for _, s in listed(run_dir)]


def test_snapshots_follow_generator_steps_for_a_game_with_several_critic_steps(compose_train, fake_data_root, tmp_path):
    # debug=limit: 2 epochs of 4 batches; n_critic=2: a generator step every second batch, 4 in all
    cfg = compose_train(*BARE, *POSTHOC, "model.ema.posthoc.snapshot_every=2", "model.n_critic=2", "data=mnist",
                        f"paths.data_dir={fake_data_root}")
    module = fit(cfg, tmp_path)
    assert module.generator_steps == 4 and [a.t for a in module.posthoc_ema.averages] == [4, 4]
    assert written_steps(tmp_path) == [(0.05, 2, 2), (0.1, 2, 2), (0.05, 4, 4), (0.1, 4, 4)]
    final = load_file(str(snapshot_folder(tmp_path) / "0.1-00000004.safetensors"))
    averaged = module.posthoc_ema.averages[1].module.state_dict()
    assert all(torch.equal(final[name], averaged[name]) for name in averaged)


def test_a_one_loss_family_takes_a_snapshot_every_snapshot_every_updates(compose_train, fake_data_root, tmp_path):
    cfg = compose_train(*(o for o in BARE if "base_channels" not in o), "model=vae", "model.net.encoder.base_channels=4",
                        "model.net.decoder.base_channels=4", *POSTHOC, "model.ema.posthoc.snapshot_every=3", "data=mnist",
                        f"paths.data_dir={fake_data_root}")
    fit(cfg, tmp_path)
    assert written_steps(tmp_path) == [(0.05, 3, 3), (0.1, 3, 3), (0.05, 6, 6), (0.1, 6, 6)]


def test_a_run_interrupted_and_resumed_writes_the_snapshots_of_the_run_left_alone(compose_train, fake_data_root, tmp_path):
    from genlab.callbacks.interrupt import GracefulInterrupt, TrainingInterrupted
    from tests.test_resume import SignalAt

    cfg = compose_train(*BARE, *POSTHOC, "model.ema.posthoc.snapshot_every=2", "data=mnist",
                        f"paths.data_dir={fake_data_root}", "trainer.max_epochs=3")
    alone, resumed = tmp_path / "alone", tmp_path / "resumed"
    fit(cfg, alone)
    graceful = GracefulInterrupt(tmp_path / "checkpoints")
    with pytest.raises(TrainingInterrupted):  # stops after batch 5, generator step 6, a snapshot's
        fit(cfg, resumed, callbacks=[SignalAt(graceful, 5), graceful])
    # the interrupt, before the writer in this list, left step 6's checkpoint without step 6's snapshots
    assert written_steps(resumed) == [(0.05, 2, 2), (0.1, 2, 2), (0.05, 4, 4), (0.1, 4, 4)]
    # and a snapshot beyond the checkpoint (an abandoned run's) is on disk, other than the one the run will write
    shutil.copy(snapshot_folder(resumed) / "0.05-00000002.safetensors", snapshot_folder(resumed) / "0.05-00000008.safetensors")
    fit(cfg, resumed, ckpt_path=str(tmp_path / "checkpoints" / "interrupted.ckpt"))
    assert written_steps(resumed) == written_steps(alone) and len(written_steps(alone)) == 12
    for path in sorted(snapshot_folder(alone).iterdir()):
        assert file_contents(path) == file_contents(snapshot_folder(resumed) / path.name), path.name


def file_contents(path: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """A snapshot's metadata and tensors (as bytes): safetensors writes its metadata in no fixed order."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    return metadata, {name: tensor.numpy().tobytes() for name, tensor in load_file(str(path)).items()}


# --- genlab eval / sample ema_length=... ------------------------------------------------------------------------------

SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=4", "classifier.feature_dim=8")
SMALL_PROTOCOL = ("n_samples=20", "batch_size=10", "extractor=classifier", "kid_subsets=5", "is_splits=2",
                  "progress=false", "device=cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A DCGAN trained with post-hoc averages on a tiny MNIST (8 generator steps, snapshots every 3), and a run folder
    of the same model without them (its initial weights): each genlab command on them takes a second or two."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from tests.conftest import make_mnist

    root = tmp_path_factory.mktemp("posthoc")
    make_mnist(root / "data", n_train=96, n_test=32)
    data = (f"paths.data_dir={root / 'data'}", f"paths.cache_dir={root / 'cache'}")
    nets = ("data=mnist", "data.val_size=16", "model.latent_dim=8", "model.net.generator.base_channels=8",
            "model.net.discriminator.base_channels=8")
    result = run_genlab("train", *FAST, *nets, *POSTHOC, "model.ema.posthoc.snapshot_every=3", "model.ema.decay=0.9",
                        "callbacks.sample_quality.n_samples=20", *SMALL_JUDGE, *data, f"hydra.run.dir={root / 'run'}",
                        cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(nets))
    GlobalHydra.instance().clear()
    plain = root / "plain"
    (plain / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, plain / ".hydra" / "config.yaml")
    (plain / "checkpoints").mkdir()
    torch.save({"state_dict": build_module(cfg).state_dict(), "progress": {"generator_steps": 0}},
               plain / "checkpoints" / "last.ckpt")
    return {"run": root / "run", "plain": plain, "root": root, "data": root / "data", "cache": root / "cache"}


def genlab_eval(trained: dict[str, Path], run: Path, *overrides: str):
    return run_genlab("eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"paths.data_dir={trained['data']}",
                      f"paths.cache_dir={trained['cache']}", *SMALL_PROTOCOL, *SMALL_JUDGE, *overrides,
                      cwd=trained["root"])


def refused_in_one_line(result, *names: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
    for name in names:
        assert name in line, line
    return line


def test_the_trained_run_holds_each_average_every_snapshot_every_generator_steps(trained):
    assert written_steps(trained["run"]) == [(0.05, 3, 3), (0.1, 3, 3), (0.05, 6, 6), (0.1, 6, 6)]


def test_genlab_train_resumed_into_a_new_folder_goes_on_from_the_earlier_folders_snapshots(trained):
    later = trained["root"] / "resumed"
    result = run_genlab("train", f"ckpt_path={trained['run'] / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3",
                        f"hydra.run.dir={later}", cwd=trained["root"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert written_steps(later) == [(s, step, step) for step in (3, 6, 9, 12) for s in (0.05, 0.1)]
    assert file_contents(snapshot_folder(later) / "0.1-00000006.safetensors") == \
        file_contents(snapshot_folder(trained["run"]) / "0.1-00000006.safetensors")


def test_eval_of_two_lengths_keeps_an_entry_for_each_in_metrics_json(trained):
    for length in ("0.1", "0.15"):
        result = genlab_eval(trained, trained["run"], f"ema_length={length}")
        assert result.returncode == 0, result.stderr[-3000:]
    entries = json.loads((trained["run"] / "checkpoints" / "metrics.json").read_text())
    weights = sorted(entry["protocol"]["weights"] for entry in entries.values())
    assert weights == ["posthoc_ema sigma_rel=0.1 at step 8", "posthoc_ema sigma_rel=0.15 at step 8"]
    assert entries["last.ckpt"]["protocol"]["weights"] == "posthoc_ema sigma_rel=0.15 at step 8"
    fids = [entry["metrics"]["fid"] for entry in entries.values()]
    assert fids[0] != fids[1]


def test_a_reconstructed_length_loads_into_the_image_network_in_place_of_the_raw_weights(trained):
    from genlab.run.load import load_model, load_run_config

    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    cfg = load_run_config(ckpt)
    raw = load_model(ckpt, cfg, ema=False)
    rebuilt = load_model(ckpt, cfg, ema_length=0.1)  # a trained length: its own average, at the checkpoint's step
    assert rebuilt.weights == "posthoc_ema sigma_rel=0.1 at step 8" and not rebuilt.samples_from_ema
    own = dict(rebuilt.posthoc_ema.averages[1].module.named_parameters())
    network = dict(rebuilt.family.image_network().named_parameters())
    assert all(torch.allclose(network[name], own[name], atol=1e-5) for name in own)
    assert any(not torch.equal(network[name], p) for name, p in raw.family.image_network().named_parameters())


def test_sample_at_an_earlier_snapshot_names_the_weights_it_used(trained, tmp_path):
    result = run_genlab("sample", f"ckpt_path={trained['run'] / 'checkpoints' / 'last.ckpt'}", "ema_length=0.08",
                        "ema_step=3", "n=8", "nrow=4", "n_interpolations=0", "device=cpu", f"out={tmp_path}",
                        cwd=trained["root"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights: posthoc_ema sigma_rel=0.08 at step 3" in result.stderr + result.stdout
    assert (tmp_path / "sample_seed0.png").is_file()


@pytest.mark.parametrize(("overrides", "names"), [
    (("ema_length=0.3",), ("ema_length=0.3", "(0, 0.28)")),
    (("ema_length=0",), ("ema_length=0", "(0, 0.28)")),
    (("ema_length=0.1", "ema_step=9"), ("ema_step=9 is later than the last snapshot", "ema_step <= 8")),
    (("ema_length=0.1", "ema_step=4"), ("ema_step=4 is not a snapshot's step", "3, 6, 8")),
    (("ema_length=0.1", "ema=false"), ("ema_length=0.1", "ema=false", "drop one")),
    (("ema_step=3",), ("ema_step=3", "add ema_length")),
])
def test_eval_refuses_a_length_or_step_it_cannot_rebuild_in_one_line(trained, overrides, names):
    refused_in_one_line(genlab_eval(trained, trained["run"], *overrides), *names)


def test_eval_of_a_run_without_snapshots_asked_for_a_length_says_how_to_keep_them(trained):
    refused_in_one_line(genlab_eval(trained, trained["plain"], "ema_length=0.1"),
                        "ema_length=0.1", "holds no snapshots", "model.ema.posthoc.sigma_rels=")


def test_a_checkpoint_before_the_first_snapshot_is_refused_in_one_line(trained, tmp_path):
    early = Path(shutil.copytree(trained["run"], tmp_path / "run"))
    for path in snapshot_folder(early).iterdir():
        path.unlink()
    refused_in_one_line(genlab_eval(trained, early, "ema_length=0.1"),
                        "holds no snapshots", "model.ema.posthoc.snapshot_every=3")


def test_reconstruct_refuses_a_length_outside_edm2s_range_by_key(trained):
    with pytest.raises(ConfigError, match=r"^ema_length=0\.28 is not valid: .*\(0, 0\.28\)"):
        reconstruct(trained["run"], None, 8, set(), 0.28)


def test_training_refuses_post_hoc_averages_whose_snapshots_no_callback_writes(tmp_path):
    refused_in_one_line(run_genlab("train", *POSTHOC, "callbacks=none", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path),
                        "model.ema.posthoc.sigma_rels", "callbacks.posthoc_ema")


def test_training_refuses_a_post_hoc_length_for_its_end_of_training_evaluation(tmp_path):
    refused_in_one_line(run_genlab("train", *POSTHOC, "evaluate={ema_length:0.1}", f"hydra.run.dir={tmp_path / 'run'}",
                                   cwd=tmp_path),
                        "evaluate.ema_length=0.1", "genlab eval ckpt_path=")
