"""`python -m ganstudio [PATH] [options]`: the same as the `ganstudio` command (ganstudio.app)."""
import sys

from .app import main

sys.exit(main())
