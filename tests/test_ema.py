"""The generator's exponential moving average: its formula, the samples it makes, and checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.builder import build, build_module
from genlab.ema import ExponentialMovingAverage, measure_batch_norm_statistics
from tests.conftest import BARE

EMA_ON = ("model.ema.decay=0.9",)


def _set(network: nn.Linear, value: float) -> None:
    with torch.no_grad():
        network.weight.fill_(value)
        network.bias.fill_(-value)


def test_the_average_after_k_updates_is_the_closed_form_sum():
    # ema_k = d^k w_0 + (1 - d) sum_{i=1..k} d^(k-i) w_i
    network, d = nn.Linear(3, 2), 0.8
    _set(network, 1.0)
    ema = ExponentialMovingAverage(network, decay=d)
    weights = [1.0, 3.0, -2.0, 0.5, 4.0]
    for w in weights[1:]:
        _set(network, w)
        ema.update(network)
    k = len(weights) - 1
    expected = d**k * weights[0] + (1 - d) * sum(d ** (k - i) * weights[i] for i in range(1, k + 1))
    averaged = ema.averaged.module
    assert torch.allclose(averaged.weight, torch.full_like(averaged.weight, expected))
    assert torch.allclose(averaged.bias, torch.full_like(averaged.bias, -expected))
    assert ema.updates == k


def test_warmup_updates_copy_the_weights_and_averaging_starts_after_them():
    network = nn.Linear(1, 1)
    ema = ExponentialMovingAverage(network, decay=0.5, warmup=2)
    for w in (2.0, 6.0):
        _set(network, w)
        ema.update(network)
    assert ema.averaged.module.weight.item() == 6.0  # copied, not averaged with the initial weights
    _set(network, 10.0)
    ema.update(network)
    assert ema.averaged.module.weight.item() == pytest.approx(0.5 * 6.0 + 0.5 * 10.0)


def test_the_ramp_caps_the_half_life_at_a_share_of_the_updates_so_far():
    # update t uses decay min(d, 0.5 ** (1 / (rampup * t))): a half-life of at most rampup * t updates
    network, d, rampup = nn.Linear(1, 1), 0.99, 0.5
    _set(network, 0.0)
    ema = ExponentialMovingAverage(network, decay=d, rampup=rampup)
    expected = 0.0
    for t, w in enumerate([4.0, -2.0, 1.0, 8.0, 3.0], start=1):
        decay = min(d, 0.5 ** (1 / (rampup * t)))
        expected = decay * expected + (1 - decay) * w
        _set(network, w)
        ema.update(network)
    assert ema.averaged.module.weight.item() == pytest.approx(expected)
    assert ema.decay_at(1) == pytest.approx(0.25) and ema.decay_at(10_000) == d


def test_standing_statistics_are_the_plain_mean_of_the_batch_statistics():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    network.eval()
    batches = iter([torch.randn(8, 3) * s + s for s in (1.0, 2.0, 3.0)])
    seen: list[torch.Tensor] = []

    def make_batch() -> None:
        x = next(batches)
        seen.append(network[0](x).detach())
        network(x)

    measure_batch_norm_statistics(network, make_batch, batches=3)
    norm = network[1]
    assert torch.allclose(norm.running_mean, torch.stack([h.mean(0) for h in seen]).mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, torch.stack([h.var(0) for h in seen]).mean(0), atol=1e-5)
    assert not norm.training and norm.momentum == 0.1  # left as it was found


def test_the_average_gets_its_own_batch_norm_statistics_once_per_change_and_the_raw_ones_stay(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.eval()
    raw = {name: b.clone() for name, b in module.family.generator.named_buffers()}
    noise = torch.randn(4, module.family.latent_dim)
    first = module.sample(noise=noise)
    averaged = {name: b.clone() for name, b in module.ema.averaged.module.named_buffers()}
    assert any(not torch.equal(averaged[name], raw[name]) for name in raw if "running" in name)
    assert all(torch.equal(b, raw[name]) for name, b in module.family.generator.named_buffers())
    assert torch.equal(module.sample(noise=noise), first)  # the same average: measured once, reproducibly
    module.ema.update(module.family.generator)  # a new average copies the raw statistics; the next sample measures again
    module.sample(noise=noise)
    assert any(not torch.equal(b, raw[name]) for name, b in module.ema.averaged.module.named_buffers() if "running" in name)


def test_the_average_copies_batch_norm_statistics_instead_of_averaging_them():
    network = nn.BatchNorm1d(2)
    ema = ExponentialMovingAverage(network, decay=0.9)
    network.running_mean.fill_(3.0)
    ema.update(network)
    assert ema.averaged.module.running_mean.tolist() == [3.0, 3.0]


def test_the_average_is_not_trained():
    ema = ExponentialMovingAverage(nn.Linear(2, 2), decay=0.9)
    assert not any(p.requires_grad for p in ema.parameters())


def _module_with_distinct_ema(compose_train):
    module = build_module(compose_train(*BARE, *EMA_ON))
    with torch.no_grad():  # raw generator weights moved away from the average
        for p in module.family.generator.parameters():
            p.add_(0.5)
    return module


def test_samples_come_from_the_averaged_weights_by_default(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.eval()
    noise = torch.randn(4, module.family.latent_dim)
    got = module.sample(noise=noise)
    expected = module.ema.averaged.module(noise, None)  # with the batch norm statistics measured for it
    assert torch.allclose(got, expected, atol=1e-6)


def test_samples_come_from_the_raw_weights_on_request_and_sampling_leaves_them_unchanged(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.eval()
    raw = {name: p.clone() for name, p in module.family.generator.state_dict().items()}
    noise = torch.randn(4, module.family.latent_dim)
    module.sample(noise=noise)  # swaps the average in and back out
    assert all(torch.equal(raw[name], p) for name, p in module.family.generator.state_dict().items())
    assert torch.allclose(module.sample(noise=noise, ema=False), module.family.generator(noise, None), atol=1e-6)
    assert not torch.allclose(module.sample(noise=noise, ema=False), module.sample(noise=noise))


def test_ema_is_off_unless_a_decay_is_set(compose_train):
    assert build_module(compose_train(*BARE)).ema is None
    assert build_module(compose_train(*BARE, "model.ema=null")).ema is None


def test_training_updates_the_average_after_each_generator_step(compose_train, tmp_path):
    datamodule, module, trainer = build(compose_train(*BARE, *EMA_ON, "model.n_critic=2", "trainer.max_epochs=1"))
    trainer.fit(module, datamodule=datamodule)
    assert module.generator_steps == 2 and module.ema.updates == 2


def test_a_checkpoint_round_trip_restores_the_raw_and_the_averaged_weights(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.ema.update(module.family.generator)
    restored = build_module(compose_train(*BARE, *EMA_ON))
    restored.load_state_dict(module.state_dict())
    for mine, theirs in ((module.family.generator, restored.family.generator), (module.ema.averaged, restored.ema.averaged)):
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    assert restored.ema.updates == 1


@pytest.mark.parametrize(("override", "key"), [
    ("model.ema.decay=1.5", "model.ema.decay"),
    ("model.ema.warmup=-1", "model.ema.warmup"),
    ("+model.ema.halflife=10", "model.ema.halflife"),
    ("model.ema.rampup=0", "model.ema.rampup"),
    ("model.ema.standing_statistics=-2", "model.ema.standing_statistics"),
])
def test_bad_ema_settings_are_named_by_key(compose_train, override, key):
    with pytest.raises(Exception, match=key):  # a ConfigError, inside Hydra's InstantiationException
        build_module(compose_train(*BARE, *EMA_ON, override))


def test_a_run_with_ema_and_ada_interrupted_and_resumed_ends_with_the_same_raw_and_averaged_weights_and_p(
    compose_train, fake_data_root, tmp_path
):
    from genlab.callbacks.interrupt import GracefulInterrupt, TrainingInterrupted
    from tests.test_resume import SignalAt, fitted

    cfg = compose_train(*BARE, *EMA_ON, "model/augment=ada", "model.augment.interval=1", "model.augment.speed_kimg=10",
                        "model.augment.probability=0.5",
                        "data=mnist", f"paths.data_dir={fake_data_root}", "trainer.max_epochs=2")
    alone = fitted(cfg)
    graceful = GracefulInterrupt(tmp_path / "checkpoints")
    with pytest.raises(TrainingInterrupted):
        fitted(cfg, callbacks=[SignalAt(graceful, 5), graceful])
    resumed = fitted(cfg, ckpt_path=str(tmp_path / "checkpoints" / "interrupted.ckpt"))
    assert resumed.ema.updates == alone.ema.updates == 8
    # p moved by 0.0016 a critic step from 0.5: a resume that lost it would end elsewhere
    assert resumed.family.augment.p == pytest.approx(alone.family.augment.p) and alone.family.augment.p != 0.5
    expected, got = alone.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys() and any(name.startswith("ema.") for name in expected)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


@pytest.mark.slow
def test_eval_and_sample_use_the_average_by_default_and_the_raw_weights_on_request(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from tests.conftest import run_genlab

    def genlab(*args: str):
        result = run_genlab(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    judge = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32",
             f"paths.cache_dir={tmp_path / 'cache'}")
    run = tmp_path / "run"
    genlab("train", "debug=limit", "model.ema.decay=0.5", "model.latent_dim=8", "model.net.generator.base_channels=8",
           "model.net.discriminator.base_channels=8", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
           "callbacks.sample_quality.n_samples=50", *judge, f"hydra.run.dir={run}")
    ckpt = run / "checkpoints" / "last.ckpt"
    grids = {}
    for ema in ("true", "false"):
        genlab("sample", f"ckpt_path={ckpt}", f"ema={ema}", "n=16", f"out={tmp_path / ema}")
        grids[ema] = np.asarray(Image.open(tmp_path / ema / "sample_seed0.png"))
    assert not np.array_equal(grids["true"], grids["false"]), "the average and the raw weights draw different images"
    genlab("eval", f"ckpt_path={ckpt}", "ema=false", "n_samples=50", "kid_subset_size=50", "extractor=classifier",
           "progress=false", *judge)
    protocol = json.loads((ckpt.parent / "metrics.json").read_text())["last.ckpt"]["protocol"]
    assert protocol["weights"] == "raw"


def test_a_vae_averages_its_decoder_once_per_optimizer_step(compose_train, fake_data_root):
    overrides = (*(o for o in BARE if "base_channels" not in o), "model=vae", "model.net.encoder.base_channels=4",
                 "model.net.decoder.base_channels=4", "data=mnist", f"paths.data_dir={fake_data_root}",
                 "model.ema.decay=0.9")
    datamodule, module, trainer = build(compose_train(*overrides))
    trainer.fit(module, datamodule=datamodule)
    assert module.ema.updates == module.generator_steps == 8  # debug=limit: 2 epochs of 4 batches
    averaged = dict(module.ema.averaged.module.named_parameters())
    assert any(not torch.equal(p, averaged[name]) for name, p in module.family.decoder.named_parameters())
