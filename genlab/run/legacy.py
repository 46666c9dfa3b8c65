"""Run folders of earlier genlab versions, read by this one: what their configs named that has moved since.

Its own module because both the loader (genlab/run/load.py: upgrading a run's config) and the trust check
(genlab/run/trust.py: an old target is still genlab's own) need it.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

# what `model._target_` named before each family's math had a home of its own (genlab/families/): a run
# trained then names its LightningModule, whose arguments the family takes (less `ema`, which the loop keeps)
LEGACY_TARGETS = {
    "genlab.modules.gan.AdversarialModule": "genlab.families.gan.GAN",
    "genlab.modules.vae.VAEModule": "genlab.families.vae.VAE",
    "genlab.modules.diffusion.DiffusionModule": "genlab.families.ddpm.DDPM",
    "genlab.modules.flow.FlowMatchingModule": "genlab.families.flow.FlowMatching",
}


def upgrade_run_config(cfg: DictConfig) -> DictConfig:
    """A run folder's config as this version builds it: an earlier version's model target named anew."""
    target = OmegaConf.select(cfg, "model._target_")
    if target in LEGACY_TARGETS:
        with open_dict(cfg):
            cfg.model._target_ = LEGACY_TARGETS[target]
    return cfg
