"""One module per ``procure`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
