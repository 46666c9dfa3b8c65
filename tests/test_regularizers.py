"""Penalties and constraints are objects a YAML lists, not branches of the training loop."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from genlab.builder import build, build_family
from genlab.errors import ConfigError
from genlab.objectives import gradient_penalty
from genlab.regularizers import AuxiliaryClassifier, GradientPenalty, R1Penalty, R2Penalty, Regularizer, Term, WeightClipping
from tests.conftest import BARE, logged


class DriftPenalty(Regularizer):
    """Progressive GAN's drift term (Karras et al. 2018, sec. A.1): `weight` * E[D(x)^2] keeps real scores near 0.

    Defined here, in a test, and listed by a test-only YAML: adding it touches nothing in genlab/.
    """

    def __init__(self, weight: float = 0.001) -> None:
        self.weight = weight
        self.critic_steps_seen = 0

    def critic_term(self, gan, real: Tensor, fake: Tensor, labels: Tensor | None, step: int) -> Term:
        drift = (gan.discriminator(real, labels) ** 2).mean()
        return Term(self.weight * drift, drift.detach())

    def after_critic_step(self, gan) -> None:
        self.critic_steps_seen += 1


# a model option of our own, in a config folder genlab does not ship: DCGAN plus the drift penalty
SPY_MODEL = """defaults:
  - dcgan
  - _self_

regularizers:
  drift:
    _target_: tests.test_regularizers.DriftPenalty
    weight: 0.5
"""


@pytest.fixture
def drift_model(tmp_path) -> str:
    folder = tmp_path / "user_configs" / "model"
    folder.mkdir(parents=True)
    (folder / "dcgan_drift.yaml").write_text(SPY_MODEL)
    return f"hydra.searchpath=[file://{tmp_path / 'user_configs'}]"


def test_a_regularizer_from_a_users_yaml_adds_its_term_and_hooks_without_any_edit_of_the_loop(
    compose_train, fake_data_root, drift_model
):
    cfg = compose_train(*BARE, "model=dcgan_drift", drift_model, "data=mnist", f"paths.data_dir={fake_data_root}")
    gan = build_family(cfg)
    (drift,) = gan.regularizers.values()
    assert isinstance(drift, DriftPenalty) and drift.weight == 0.5
    real, fake = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    gan.eval()  # batch norm from running statistics: the same scores in every pass
    plain, _ = gan.critic_loss(real, fake, None, regularize=False)
    regularized, logs = gan.critic_loss(real, fake, None)
    expected_drift = (gan.discriminator(real) ** 2).mean()
    assert logs["drift"].item() == pytest.approx(expected_drift.item(), rel=1e-5)
    assert regularized.item() == pytest.approx(plain.item() + 0.5 * expected_drift.item(), rel=1e-5)


def test_a_users_regularizer_runs_after_every_critic_step_and_is_logged(compose_train, fake_data_root, drift_model, tmp_path):
    cfg = compose_train(*(o for o in BARE if o != "~logger"), "model=dcgan_drift", drift_model, "data=mnist",
                        f"paths.data_dir={fake_data_root}", "logger=csv", "trainer.log_every_n_steps=1")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert module.family.regularizers["drift"].critic_steps_seen == module.progress.critic_steps == 8
    assert len(logged(tmp_path / "run", "train/drift")) == 8


def test_the_wgan_yamls_list_their_papers_constraint_and_penalty(compose_train):
    wgan = build_family(compose_train("model=wgan"))
    (clipping,) = wgan.regularizers.values()
    assert isinstance(clipping, WeightClipping) and clipping.clip_value == 0.01
    gp = build_family(compose_train("model=wgan_gp"))
    (penalty,) = gp.regularizers.values()
    assert isinstance(penalty, GradientPenalty) and penalty.weight == 10.0
    assert build_family(compose_train("model=wgan_gp", "model.regularizers.gradient_penalty=null")).regularizers == {}
    assert build_family(compose_train("model=dcgan")).regularizers == {}


def test_the_gradient_penalty_term_is_weight_times_the_penalty_of_the_papers_formula(compose_train):
    gan = build_family(compose_train("model=wgan_gp", "model.regularizers.gradient_penalty.weight=3"))
    real, fake = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    torch.manual_seed(5)
    term = gan.regularizers["gradient_penalty"].critic_term(gan, real, fake, None, 1)
    torch.manual_seed(5)
    penalty = gradient_penalty(gan.discriminator, real, fake)
    assert term.logged.item() == pytest.approx(penalty.item(), rel=1e-5)
    assert term.loss.item() == pytest.approx(3 * penalty.item(), rel=1e-5)


def test_weight_clipping_bounds_the_critic_after_its_step():
    class Critic(nn.Module):
        discriminator = nn.Linear(4, 1)

    gan = Critic()
    with torch.no_grad():
        gan.discriminator.weight.fill_(5.0)
    WeightClipping(0.2).after_critic_step(gan)
    assert gan.discriminator.weight.abs().max().item() == pytest.approx(0.2)


@pytest.mark.parametrize(("override", "message"), [
    ("model.regularizers.gradient_penalty.weight=-1", "model.regularizers.gradient_penalty.weight=-1 is not valid"),
    ("+model.regularizers.gradient_penalty.strength=1", "strength"),
])
def test_bad_regularizer_settings_are_named(compose_train, override, message):
    with pytest.raises(Exception, match=message):
        build_family(compose_train("model=wgan_gp", override))


class _LinearCritic:
    """What R1/R2 read from a GAN family: a critic D(x) = <w, x> with ||w||^2 = 9."""

    def __init__(self) -> None:
        w = torch.tensor([1.0, 2.0, 0.0, -2.0])
        self.discriminator = lambda x, labels=None: x.flatten(1) @ w


@pytest.mark.parametrize("cls", [R1Penalty, R2Penalty])
def test_r1_and_r2_terms_are_half_gamma_times_the_squared_gradient_norm(cls):
    gan = _LinearCritic()
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    term = cls(gamma=0.1).critic_term(gan, real, fake, None, 1)
    assert term.logged.item() == pytest.approx(9.0, rel=1e-5)
    assert term.loss.item() == pytest.approx(0.05 * 9.0, rel=1e-5)


def test_lazy_r1_applies_every_interval_critic_steps_scaled_by_the_interval():
    gan = _LinearCritic()
    penalty = R1Penalty(gamma=0.1, interval=4)
    real = torch.randn(2, 1, 2, 2)
    losses = []
    for step in range(1, 9):
        term = penalty.critic_term(gan, real, real, None, step)
        losses.append(None if term is None else round(term.loss.item(), 5))
    assert losses == [None, None, None, 4 * 0.45, None, None, None, 4 * 0.45]


def test_r2_differentiates_at_the_fakes_and_r1_at_the_reals():
    gan = _LinearCritic()
    gan.discriminator = lambda x, labels=None: 0.5 * (x.flatten(1) ** 2).sum(1)  # gradient x
    real, fake = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    assert R1Penalty(gamma=2.0).critic_term(gan, real, fake, None, 1).logged.item() == pytest.approx(4.0)
    assert R2Penalty(gamma=2.0).critic_term(gan, real, fake, None, 1).logged.item() == pytest.approx(16.0)


def test_bad_lazy_interval_names_its_key():
    with pytest.raises(Exception, match="model.regularizers.r1.interval"):
        R1Penalty(gamma=1.0, interval=0)


def test_the_rpgan_yaml_pairs_the_relativistic_loss_with_r1_and_r2(compose_train):
    gan = build_family(compose_train("model=rpgan"))
    assert gan.objective.generator_sees_real
    assert {name: type(r) for name, r in gan.regularizers.items()} == {"r1": R1Penalty, "r2": R2Penalty}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gan.discriminator.modules())


class _ClassifyingCritic:
    """What ACGAN's term reads: a discriminator whose class head gives hand-made logits per image."""

    def __init__(self, logits: dict[float, Tensor]) -> None:
        # each image is filled with one value, which picks its logits
        head = lambda x: torch.stack([logits[round(v, 3)] for v in x.flatten(1)[:, 0].tolist()])  # noqa: E731
        self.discriminator = type("D", (), {"classify": staticmethod(head)})()


def _negated_log_likelihood(logits: Tensor, label: int) -> float:
    return -(logits[label] - logits.exp().sum().log()).item()


def test_acgan_terms_are_the_class_cross_entropies_of_the_papers_log_likelihood():
    # L_C = E[log P(C=c|X_real)] + E[log P(C=c|X_fake)]: the critic minimises -L_C, the generator the fake half
    logits = {1.0: torch.tensor([2.0, 0.0, -1.0]), 2.0: torch.tensor([0.5, 0.5, 3.0])}
    gan = _ClassifyingCritic(logits)
    real, fake, labels = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0), torch.tensor([0, 2])
    real_nll = (_negated_log_likelihood(logits[1.0], 0) + _negated_log_likelihood(logits[1.0], 2)) / 2
    fake_nll = (_negated_log_likelihood(logits[2.0], 0) + _negated_log_likelihood(logits[2.0], 2)) / 2
    both = AuxiliaryClassifier(weight=0.5).critic_term(gan, real, fake, labels, 1)
    assert both.logged.item() == pytest.approx(real_nll + fake_nll, rel=1e-5)
    assert both.loss.item() == pytest.approx(0.5 * (real_nll + fake_nll), rel=1e-5)
    real_only = AuxiliaryClassifier(weight=1.0, on_fake=False).critic_term(gan, real, fake, labels, 1)
    assert real_only.loss.item() == pytest.approx(real_nll, rel=1e-5)
    assert AuxiliaryClassifier(weight=2.0).generator_term(gan, fake, labels).loss.item() == pytest.approx(2 * fake_nll, rel=1e-5)


def test_acgan_trains_the_class_head_from_both_players_and_its_score_ignores_the_label(compose_train, fake_data_root):
    cfg = compose_train(*BARE, "model=acgan", "data=mnist", f"paths.data_dir={fake_data_root}")
    datamodule, module, trainer = build(cfg)
    images = torch.randn(3, 1, 28, 28)
    critic = module.family.discriminator
    assert torch.equal(critic(images, torch.tensor([0, 1, 2])), critic(images, torch.tensor([5, 5, 5])))
    head = critic.classifier.weight.detach().clone()
    trainer.fit(module, datamodule=datamodule)
    assert not torch.equal(head, critic.classifier.weight)
    assert {"train/auxiliary_classifier", "train/g_auxiliary_classifier"} <= set(trainer.callback_metrics)


def test_acgan_discriminator_runs_its_trunk_once_per_batch_for_the_score_and_the_class_head():
    from genlab.nets.dcgan import Discriminator

    torch.manual_seed(0)
    critic = Discriminator((1, 28, 28), base_channels=8, num_classes=10, conditioning="auxiliary")
    trunk_calls = []
    critic.net[0].register_forward_hook(lambda *_: trunk_calls.append(1))
    real, fake = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    scores, logits = critic(real), critic.classify(real)
    critic(fake), critic.classify(fake), critic.classify(real)  # the last two batches are kept
    assert len(trunk_calls) == 2
    # gradients reach the trunk through both heads
    (scores.sum() + logits.sum()).backward()
    assert critic.net[0].weight.grad is not None
    # a changed weight, a new batch or another mode computes phi(x) again
    with torch.no_grad():
        critic.net[0].weight.add_(0.01)
    critic.classify(real)
    assert len(trunk_calls) == 3
    critic.eval()
    eval_logits = critic.classify(real)
    assert len(trunk_calls) == 4
    # the same values as a separate pass
    assert torch.allclose(eval_logits, critic.classifier(critic.net[:-1](real).flatten(1)))
    trunk_calls.clear()
    real.mul_(0.5)  # the same tensor, changed in place
    critic.classify(real)
    assert len(trunk_calls) == 1
    with torch.inference_mode():  # as Lightning validates: inference tensors have no version counter to key on
        frozen = real.clone()
        assert torch.allclose(critic.classify(frozen), critic.classifier(critic.net[:-1](frozen).flatten(1)))
        critic(frozen)


@pytest.mark.parametrize(("override", "message"), [
    ("model.net.discriminator.conditioning=projection", "model.net.discriminator.conditioning=auxiliary"),
    ("model.regularizers.auxiliary_classifier.weight=-1", "model.regularizers.auxiliary_classifier.weight"),
])
def test_bad_acgan_settings_are_named(compose_train, fake_data_root, override, message):
    cfg = compose_train(*BARE, "model=acgan", "data=mnist", f"paths.data_dir={fake_data_root}", override)
    with pytest.raises(Exception, match=message):
        datamodule, module, trainer = build(cfg)
        trainer.fit(module, datamodule=datamodule)


def test_acgan_on_a_discriminator_without_a_class_head_names_the_net_to_use():
    gan = type("GAN", (), {"discriminator": nn.Linear(4, 1)})()  # like model/net=mlp's: no classify()
    with pytest.raises(ConfigError, match="model/net=dcgan_auxiliary"):
        AuxiliaryClassifier().generator_term(gan, torch.randn(2, 4), torch.tensor([0, 1]))
