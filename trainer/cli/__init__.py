"""`ganstudio-train`: one module per subcommand, one shared preamble."""
from trainer.cli.main import main

__all__ = ["main"]
