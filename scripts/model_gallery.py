"""The README's gallery: every GAN and VAE family at one budget in generator updates, judged alike.

A front of scripts/gan_recipes.py (the same runner, budget axis and `genlab eval` protocol: classifier
FID and class coverage on 1,000 samples against the test split), one seed. Each family runs the recipe
that did best for it (GALLERY: mostly the table's lr 1e-3 + EMA); the conv GANs run at the quick
start's widths (CONV_NETS), which the table used too, so that a --work folder shared with the table
keeps its runs instead of training them again:

    python scripts/model_gallery.py --jobs 2 --threads 1 --work /tmp/gallery_work     # BUDGET: 5,000 updates

writes docs/gallery/grids/<recipe>.png (each family's sample grid), recipes.md (FID, coverage, label
accuracy of the conditional families, minutes), recipes.csv/.json and recipes_seed0.png (every grid
side by side, captioned with its FID and coverage). Every gan_recipes.py option works here too (a
later --out, --seeds or --recipes wins). The many-step families (ddpm, flow) are judged on training
minutes instead, by scripts/family_curves.py.
"""

from __future__ import annotations

import sys

from gan_recipes import RECIPES, parse_args, run_table

# the quick start's conv nets and latent size (configs/experiment/quickstart.yaml), as in the table
CONV_NETS = ["model.latent_dim=64", "model.net.generator.base_channels=16", "model.net.discriminator.base_channels=32"]
# each family's picture: the recipe (scripts/gan_recipes.py) that did best for it at the gallery's budget, in the
# order of the README's model table
# (1,000 updates, seed 0, classifier FID: MLP gan 568 at its paper's rate, but 66 with lr 1e-3 + EMA at 5,000; rpgan
# 183 -> 38, sngan 168 -> 81, wgan_gp 142 -> 22 with lr 1e-3 + EMA; weight-clipped wgan 289 -> 136 at lr 2e-4 + EMA)
GALLERY: dict[str, str] = {
    "gan": "gan_lr1e3_ema", "cgan": "cgan", "acgan": "acgan_real_lr1e3_ema", "rpgan": "rpgan_lr1e3_ema",
    "dcgan": "dcgan_lr1e3_ema", "lsgan": "lsgan_lr1e3_ema", "sngan": "sngan_lr1e3_ema", "wgan": "wgan_lr2e4_ema",
    "wgan_gp": "wgan_gp_lr1e3_ema", "vae": "vae", "cvae": "cvae",
}
# generator updates per picture: the MLP gan still draws noise at 1,000, digits at 5,000
BUDGET = 5000
# the families with their own nets (an MLP GAN, the conv VAE), which have no keys for CONV_NETS
OWN_NETS = ("gan", "vae", "cvae")


def own_nets(recipe: str) -> bool:
    """Whether a recipe's family brings its own nets (any recipe of gan, vae, cvae), rather than DCGAN's conv nets."""
    return RECIPES[recipe][1][0] in {f"model={family}" for family in OWN_NETS}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(["--budget", str(BUDGET), "--recipes", *GALLERY.values(), "--seeds", "0", "--out", "docs/gallery",
                       *argv])
    args.title = "The GAN and VAE families on mnist_mini at one budget (the README's gallery)"
    return run_table(args, [([r for r in args.recipes if not own_nets(r)], CONV_NETS),
                            ([r for r in args.recipes if own_nets(r)], [])])


if __name__ == "__main__":
    sys.exit(main())
