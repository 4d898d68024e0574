"""Makes tests/data/stylegan1-fmnist16.safetensors, the trained StyleGAN v1 checkpoint on which
tests/trainer/test_stylegan1.py measures style mixing: the `stylegan1` preset at 16 px, narrowed
(32 maps, z = w = 32) to a few hundred kB, grown from 8x8 with 20 + 20 kimg per level and trained
80 kimg on Fashion-MNIST (about three minutes on one thread). With 1 + 1 kimg per level and 4 kimg
(this checkpoint until 2026-12-07) the split came out reversed: early in training the newest layers
take the layout (benchmarks/results/stylegan1.md). Run from the repository root:
    .venv/bin/python tests/data/make_stylegan1_mixing.py"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).with_name("stylegan1-fmnist16.safetensors")
ARGS = ["--preset", "stylegan1", "--data", "fashion-mnist", "--resolution", "16", "--channel-base", "256",
        "--channel-max", "32", "--z-dim", "32", "--w-dim", "32", "--grow-start", "8", "--grow-kimg", "20",
        "--fade-kimg", "20", "--kimg", "80", "--snapshot-kimg", "80", "--sample-kimg", "80", "--seed", "0",
        "--threads", "1"]

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "trainer", "train", *ARGS, "--outdir", tmp], check=True)
    shutil.copy(max(Path(tmp).glob("*/checkpoints/step-*.safetensors")), OUT)
print(OUT, OUT.stat().st_size, "bytes")
