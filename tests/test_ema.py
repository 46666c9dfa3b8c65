"""The generator's exponential moving average: its formula, the samples it makes, and checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.builder import build, build_module
from genlab.ema import ExponentialMovingAverage
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
        for p in module.generator.parameters():
            p.add_(0.5)
    return module


def test_samples_come_from_the_averaged_weights_by_default(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.eval()
    noise = torch.randn(4, module.latent_dim)
    expected = module.ema.averaged.module(noise, None)
    assert torch.allclose(module.sample(noise=noise), expected, atol=1e-6)


def test_samples_come_from_the_raw_weights_on_request_and_sampling_leaves_them_unchanged(compose_train):
    module = _module_with_distinct_ema(compose_train)
    module.eval()
    raw = {name: p.clone() for name, p in module.generator.state_dict().items()}
    noise = torch.randn(4, module.latent_dim)
    module.sample(noise=noise)  # swaps the average in and back out
    assert all(torch.equal(raw[name], p) for name, p in module.generator.state_dict().items())
    assert torch.allclose(module.sample(noise=noise, ema=False), module.generator(noise, None), atol=1e-6)
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
    module.ema.update(module.generator)
    restored = build_module(compose_train(*BARE, *EMA_ON))
    restored.load_state_dict(module.state_dict())
    for mine, theirs in ((module.generator, restored.generator), (module.ema.averaged, restored.ema.averaged)):
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    assert restored.ema.updates == 1


@pytest.mark.parametrize(("override", "key"), [
    ("model.ema.decay=1.5", "model.ema.decay"),
    ("model.ema.warmup=-1", "model.ema.warmup"),
    ("+model.ema.halflife=10", "model.ema.halflife"),
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
    assert resumed.augment.p == pytest.approx(alone.augment.p) and alone.augment.p != 0.5
    expected, got = alone.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys() and any(name.startswith("ema.") for name in expected)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
