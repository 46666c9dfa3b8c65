"""DiffAugment's ops and ADA's controller: shapes, gradients, per-image transforms, the update rule."""

from __future__ import annotations

import pytest
import torch

from genlab import augment as aug
from genlab.builder import build, build_module
from tests.conftest import BARE

POLICIES = ["color", "translation", "cutout", "color,translation,cutout"]


@pytest.mark.parametrize("policy", POLICIES)
def test_augmentation_keeps_the_batch_shape(policy):
    images = torch.rand(5, 3, 28, 28) * 2 - 1
    assert aug.DiffAugment(policy)(images).shape == images.shape


@pytest.mark.parametrize("policy", POLICIES)
def test_gradients_flow_back_to_the_images(policy):
    images = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    aug.DiffAugment(policy)(images).square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_each_output_image_depends_on_its_own_input_only(policy):
    # d out[i] / d x[j] = 0 for j != i: no image is mixed with or moved to another's place,
    # so a conditional model's labels still describe their images
    images = (torch.rand(4, 1, 8, 8) * 2 - 1).requires_grad_(True)
    out = aug.DiffAugment(policy, probability=0.5)(images)
    for i in range(4):
        (grad,) = torch.autograd.grad(out[i].sum(), images, retain_graph=True)
        others = [j for j in range(4) if j != i]
        assert grad[others].abs().sum() == 0


def test_translation_and_cutout_keep_each_image_in_its_place():
    # image i is the constant i + 1: after moving and cutting, its pixels are i + 1 or the zero fill
    images = torch.arange(1.0, 7.0).view(6, 1, 1, 1).expand(6, 1, 16, 16).contiguous()
    out = aug.DiffAugment("translation,cutout")(images)
    for i in range(6):
        assert set(out[i].unique().tolist()) <= {0.0, i + 1.0}


def test_translation_moves_by_whole_pixels_within_an_eighth_of_the_side():
    images = torch.zeros(64, 1, 16, 16)
    images[:, :, 8, 8] = 1.0  # one lit pixel, moved at most 2 pixels each way
    out = aug.translation(images)
    rows, cols = out[:, 0].nonzero()[:, 1], out[:, 0].nonzero()[:, 2]
    assert len(rows) == 64 and (rows - 8).abs().max() <= 2 and (cols - 8).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1  # and not all alike


def test_cutout_zeroes_a_square_of_half_the_side_cut_off_at_the_edges():
    out = aug.cutout(torch.ones(32, 1, 16, 16))
    zeroed = (out == 0).sum(dim=(1, 2, 3))
    assert zeroed.max() == 64 and zeroed.min() > 0


def test_probability_zero_is_the_identity():
    images = torch.rand(4, 3, 8, 8)
    assert torch.equal(aug.DiffAugment("color,translation,cutout", probability=0.0)(images), images)


def test_an_unknown_policy_names_its_key_and_the_choices():
    with pytest.raises(Exception, match="model.augment.policy.*'flip'.*color, translation, cutout"):
        aug.DiffAugment("color,flip")


def test_ada_moves_p_by_the_sign_of_r_t_minus_the_target_every_interval():
    # batch 16, interval 2, speed 0.1 kimg: each adjustment is 16 * 2 / 100 = 0.32
    ada = aug.AdaptiveDiffAugment(target=0.6, interval=2, speed_kimg=0.1, probability=0.0)
    signs = [1.0, 0.6, 0.0, 0.2, 1.0, 1.0, 0.9, 0.7]  # r_t per pair: 0.8, 0.1, 1.0, 0.8
    history = []
    for step, sign in enumerate(signs, start=1):
        ada.observe(torch.tensor(sign), 16, step)
        history.append(round(ada.p, 6))
    assert history == [0.0, 0.32, 0.32, 0.0, 0.0, 0.32, 0.32, 0.64]


def test_ada_weighs_r_t_by_the_images_of_each_batch_and_keeps_p_in_0_1():
    ada = aug.AdaptiveDiffAugment(target=0.6, interval=2, speed_kimg=0.001, probability=0.9)
    ada.observe(torch.tensor(1.0), 30, 1)  # r_t = (30 * 1.0 + 10 * -1.0) / 40 = 0.5 < 0.6
    ada.observe(torch.tensor(-1.0), 10, 2)
    assert ada.p == 0.0  # 0.9 - 40 / 1, floored at 0


def test_an_ada_run_logs_augment_p_and_the_augment_state_is_checkpointed(compose_train):
    cfg = compose_train(*BARE, "model/augment=ada", "model.augment.interval=1", "model.augment.speed_kimg=0.001")
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert module.family.augment.p in (0.0, 1.0)  # each step moves p by 16 / 1 images: to a bound
    assert "train/augment_p" in trainer.logged_metrics and "train/d_real_sign" in trainer.logged_metrics
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    fresh = build_module(cfg)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.family.augment.p == module.family.augment.p


def test_a_conditional_gan_with_augmentation_judges_augmented_images_with_their_own_labels(compose_train):
    cfg = compose_train(*BARE, "model.num_classes=10", "model/augment=diffaugment", "trainer.max_epochs=1",
                        "trainer.limit_train_batches=1", "trainer.limit_val_batches=0")
    datamodule, module, trainer = build(cfg)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    module.family.discriminator.register_forward_pre_hook(lambda _, args: seen.append((args[0].detach().clone(), args[1])))
    trainer.fit(module, datamodule=datamodule)
    real, labels = next(iter(datamodule.train_dataloader()))  # the batch it trained on: epoch 0's first
    (real_seen, real_labels), (fake_seen, fake_labels), (generator_seen, generator_labels) = seen
    # D(real), D(fake) in the critic's step, D(fake) in the generator's: each with the batch's own labels
    assert all(torch.equal(given, labels) for given in (real_labels, fake_labels, generator_labels))
    assert real_seen.shape == real.shape and not torch.equal(real_seen, real), "the critic saw augmented reals"
    assert torch.equal(generator_seen, fake_seen), "both players judged the same augmented fakes"
    assert module.generator_steps == 1
