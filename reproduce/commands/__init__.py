"""The subcommands of ``python -m reproduce``, one module each."""
