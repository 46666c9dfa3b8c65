"""The README's gallery: every family's best recipe at one budget in generator updates, judged alike.

A thin front of scripts/gan_recipes.py (the same runner, budget axis and `genlab eval` protocol),
one seed, each family with the recipe that scripts/gan_recipes.py's table found best for it:

    python scripts/model_gallery.py --budget 1000 --set model.net.generator.base_channels=32 model.net.discriminator.base_channels=32

writes docs/gallery/grids/<recipe>.png (each family's seed-0 sample grid), recipes.md (classifier
FID, coverage, label accuracy for conditional families, minutes), recipes.csv/.json and
recipes_seed0.png (every grid side by side, captioned with its FID and coverage). Every
gan_recipes.py option works here too (a later --out, --seeds or --recipes wins).
"""

from __future__ import annotations

import sys

from gan_recipes import GALLERY_RECIPES
from gan_recipes import main as recipes_main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return recipes_main(["--recipes", *GALLERY_RECIPES, "--seeds", "0", "--out", "docs/gallery", *argv])


if __name__ == "__main__":
    sys.exit(main())
