"""`python -m trainer.cli` is `ganstudio-train`."""
import sys

from trainer.cli import main

sys.exit(main())
