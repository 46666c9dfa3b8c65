"""How each family trains: step counts, clipping, the ELBO's terms, the conditioning path."""

from __future__ import annotations


import pytest
import torch
from hydra.utils import instantiate

from genlab.builder import build, build_module, build_trainer
from genlab.errors import ConfigError
from genlab.nets.layers import ConditionalBatchNorm2d, Projection
from genlab.objectives import gaussian_kl_divergence
from tests.conftest import BARE

SMALL_VAE = ("model.latent_dim=4", "model.net.encoder.base_channels=4", "model.net.decoder.base_channels=4")


def fit(cfg):
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    return model, trainer


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """How often an Adam/RMSprop optimizer stepped, from its per-parameter state."""
    return int(next(iter(optimizer.state.values()))["step"])


@pytest.mark.parametrize("n_critic", [1, 3, 5])
def test_n_critic_critic_steps_per_generator_step(compose_train, fake_data_root, n_critic):
    # 2 epochs of 4 batches = 8 critic steps, counted across the epoch boundary
    cfg = compose_train(*BARE, "model=wgan_gp", "data=mnist", f"paths.data_dir={fake_data_root}",
                        f"model.n_critic={n_critic}")
    model, _ = fit(cfg)
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    assert optimizer_steps(opt_d) == 8
    assert optimizer_steps(opt_g) == 8 // n_critic


def test_wgan_critic_weights_stay_within_the_clip_value(compose_train, fake_data_root):
    cfg = compose_train(*BARE, "model=wgan", "data=mnist", f"paths.data_dir={fake_data_root}",
                        "optimizer.lr=0.05")
    model, _ = fit(cfg)
    weights = torch.cat([p.detach().flatten() for p in model.family.discriminator.parameters()])
    assert weights.abs().max().item() <= 0.01 + 1e-9
    assert weights.abs().max().item() == pytest.approx(0.01)  # the large lr pushed some onto the bound


def test_vae_elbo_is_the_sum_of_its_logged_terms(compose_train):
    cfg = compose_train("model=vae", *SMALL_VAE, "model.kl_weight=0.5")
    model = build_module(cfg)
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    torch.manual_seed(0)
    terms = model.family.loss(images, None)
    assert terms["elbo"].item() == pytest.approx(-(terms["reconstruction"] + terms["kl"]).item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx((terms["reconstruction"] + 0.5 * terms["kl"]).item(), rel=1e-6)
    # the KL term is the closed form for the encoder's moments
    mu, logvar = model.family.encoder(images)
    assert terms["kl"].item() == pytest.approx(gaussian_kl_divergence(mu, logvar).mean().item(), rel=1e-6)
    # and the reconstruction term is the Bernoulli NLL of the [0, 1] pixels, summed per image
    torch.manual_seed(0)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(model.family.decoder(z), (images + 1) / 2, reduction="sum") / 6
    assert terms["reconstruction"].item() == pytest.approx(bce.item(), rel=1e-5)


def first_layer_inputs(module: torch.nn.Module) -> list[torch.Tensor]:
    """Record what enters a net's first layer on each call."""
    seen: list[torch.Tensor] = []
    first = next(m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d)))
    first.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize(("model_name", "net_key", "extra"), [
    ("cgan", "generator", ("model/net=mlp",)),  # the paper's version
    ("cgan", "generator", ("model/net=dcgan",)),
    ("cvae", "decoder", SMALL_VAE),
])
def test_samples_of_class_k_are_generated_from_label_k(compose_train, model_name, net_key, extra):
    cfg = compose_train(f"model={model_name}", *extra)
    model = build_module(cfg)
    seen = first_layer_inputs(getattr(model.family, net_key))
    z = model.family.sample_noise(4)
    for k in (0, 3, 9):
        model.sample(noise=z, labels=torch.full((4,), k))
        code = seen[-1].flatten(1)[:, model.family.latent_dim:]
        assert torch.equal(code, torch.nn.functional.one_hot(torch.full((4,), k), 10).float())


def test_default_cgan_generator_takes_label_k_through_its_class_norms(compose_train):
    model = build_module(compose_train("model=cgan"))
    seen = first_layer_inputs(model.family.generator)
    first_norm = next(m for m in model.family.generator.modules() if isinstance(m, ConditionalBatchNorm2d))
    calls = []
    # cloned: the ReLU after it works in place
    first_norm.register_forward_hook(lambda _, args, out: calls.append((*args, out.clone())))
    z = model.family.sample_noise(4)
    for k in (0, 3, 9):
        # the raw weights: cgan keeps an EMA, whose batch norm statistics are its own (tests/test_ema.py)
        model.sample(noise=z, labels=torch.full((4,), k), ema=False)
        assert torch.equal(seen[-1].flatten(1), z)  # the noise alone enters, no one-hot code
        x, labels, out = calls[-1]
        assert torch.equal(labels, torch.full((4,), k))
        stats = first_norm.norm  # running statistics: sampling is in eval mode
        x_hat = (x - stats.running_mean[:, None, None]) / (stats.running_var[:, None, None] + stats.eps).sqrt()
        gamma, beta = first_norm.weight[k][:, None, None], first_norm.bias[k][:, None, None]
        assert torch.allclose(out, gamma * x_hat + beta, atol=1e-6)


def test_conditional_models_train_on_the_batch_labels(compose_train, fake_data_root):
    mlp_nets = [o for o in BARE if "base_channels" not in o]
    cfg = compose_train(*mlp_nets, "model=cgan", "model/net=mlp", "data=mnist", f"paths.data_dir={fake_data_root}",
                        "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0")
    datamodule, model, trainer = build(cfg)
    seen = first_layer_inputs(model.family.discriminator)
    trainer.fit(model, datamodule=datamodule)
    batch_labels = next(iter(datamodule.train_dataloader()))[1]  # the same first batch: epoch 0's permutation
    code = seen[0][:, -10:]
    assert torch.equal(code, torch.nn.functional.one_hot(batch_labels, 10).float())


def test_projection_discriminator_trains_on_the_batch_labels(compose_train, fake_data_root):
    cfg = compose_train(*BARE, "model=cgan", "data=mnist", f"paths.data_dir={fake_data_root}",
                        "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0")
    datamodule, model, trainer = build(cfg)
    projection = next(m for m in model.family.discriminator.modules() if isinstance(m, Projection))
    seen = []
    projection.register_forward_pre_hook(lambda _, args: seen.append(args[1].clone()))
    trainer.fit(model, datamodule=datamodule)
    batch_labels = next(iter(datamodule.train_dataloader()))[1]
    assert len(seen) == 3 and all(torch.equal(labels, batch_labels) for labels in seen)  # D(real), D(fake), G's D(fake)


def test_wrong_likelihood_name_lists_the_valid_ones(compose_train):
    cfg = compose_train("model=vae", "model.likelihood=poisson")
    with pytest.raises(Exception, match="bernoulli, gaussian"):
        build_module(cfg)


@pytest.mark.parametrize("model_name", ["dcgan", "vae"])
def test_linear_decay_steps_once_per_epoch_to_zero(compose_train, fake_data_root, model_name):
    extra = SMALL_VAE if model_name == "vae" else ()
    overrides = [o for o in BARE if model_name == "dcgan" or "base_channels" not in o]
    cfg = compose_train(*overrides, f"model={model_name}", *extra, "data=mnist", f"paths.data_dir={fake_data_root}",
                        "optimizer/scheduler=linear_decay", "trainer.max_epochs=4")
    model, trainer = fit(cfg)
    assert all(optimizer.param_groups[0]["lr"] == 0.0 for optimizer in trainer.optimizers)
    schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
    assert len(schedulers) == len(trainer.optimizers) and all(s.last_epoch == 4 for s in schedulers)


@pytest.mark.parametrize(("model_name", "n_critic", "critic_updates", "generator_updates"), [
    ("vae", 1, 0, 5),  # automatic optimization: Lightning steps the schedule after each update
    ("dcgan", 1, 5, 5),
    ("wgan_gp", 2, 5, 2),  # each player's schedule counts its own updates
])
def test_a_warm_up_steps_after_every_update_of_each_optimizer(compose_train, fake_data_root, model_name, n_critic,
                                                             critic_updates, generator_updates):
    extra = [*SMALL_VAE] if model_name == "vae" else [f"model.n_critic={n_critic}"]
    overrides = [o for o in BARE if model_name != "vae" or "base_channels" not in o]
    cfg = compose_train(*overrides, f"model={model_name}", *extra, "data=mnist", f"paths.data_dir={fake_data_root}",
                        "optimizer/scheduler=warmup", "optimizer.scheduler.total_iters=8", "trainer.max_epochs=1",
                        "trainer.limit_train_batches=1.0", "optimizer.lr=1e-3")  # 80 digits: 5 batches of 16
    model, trainer = fit(cfg)

    def warmed(updates: int) -> float:  # LinearLR from 1e-4 x lr to lr over 8 updates
        return 1e-3 * (1e-4 + (1 - 1e-4) * min(updates, 8) / 8)

    rates = [optimizer.param_groups[0]["lr"] for optimizer in trainer.optimizers]
    expected = [warmed(generator_updates)] + ([warmed(critic_updates)] if model_name != "vae" else [])
    assert rates == pytest.approx(expected, rel=1e-6)
    assert model.generator_steps == generator_updates


def test_a_scheduler_interval_that_is_not_epoch_or_step_is_refused_by_key(compose_train):
    from genlab.builder import build_optimizers

    cfg = compose_train("optimizer/scheduler=warmup", "optimizer.scheduler.interval=batch")
    with pytest.raises(ConfigError, match=r"optimizer.scheduler.interval='batch' .*epoch or step"):
        build_optimizers(cfg)


@pytest.mark.parametrize(("model", "n_critic", "budget", "batches"), [
    ("dcgan", 1, "budget.generator_steps=3", 3),
    ("wgan_gp", 3, "budget.generator_steps=3", 9),  # 3 critic batches per generator update, across epochs
    ("wgan_gp", 3, "budget.images=40", 3),  # batches of 16: the third reaches 40 images
])
def test_a_budget_means_the_same_training_for_every_family(compose_train, fake_data_root, model, n_critic, budget, batches):
    cfg = compose_train(*BARE, f"model={model}", f"model.n_critic={n_critic}", "data=mnist",
                        f"paths.data_dir={fake_data_root}", budget, "trainer.max_epochs=-1")
    stop = instantiate(compose_train(budget).callbacks.training_budget)  # the default callbacks' entry
    datamodule, module, _ = build(cfg)
    trainer = build_trainer(cfg, callbacks=[stop])
    trainer.fit(module, datamodule=datamodule)
    assert module.progress.critic_steps == batches and module.images_seen == 16 * batches
    assert module.generator_steps == batches // n_critic
