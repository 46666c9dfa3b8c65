"""genlab's training loops as LightningModules: one player (one loss) and two players (a GAN's game), around a family."""
