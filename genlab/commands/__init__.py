"""The genlab subcommands: train, eval, sample, report, and their --help."""
