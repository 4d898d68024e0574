"""`python -m trainer ...` is `ganstudio-train ...`; torchrun starts each rank this way
(`torchrun --nproc-per-node N -m trainer --preset ...`)."""
import sys

from trainer.cli import main

sys.exit(main())
