"""What the layer view costs: the studio renderer's time per image (a new seed each time, as a
seed drag asks) without a layer, with a layer's channels as a grid plus its spectrum, and with
one channel plus its spectrum, in one process. The variants render in turn, in rounds, so a
change in the machine's load falls on all of them; the figure is the median over rounds of each
round's median, and the ratio to no layer. The layer is the one with the most values (the last
convolution, its full resolution times its channels), the most the view can cost on that model.

  python benchmarks/layer_view.py [--rounds 10] [--renders 5] [--threads 1] [--device cpu]
                                  [--nvlabs ../shared/fixtures/nvlabs] [--out results/layer_view.txt]
"""
import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganstudio.engine.layers import LayerChoice, list_layers   # noqa: E402
from ganstudio.engine.renderer import Renderer, RenderRequest   # noqa: E402
from trainer.latents import LatentState   # noqa: E402
from ganstudio.engine.demo import find_demo_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = find_demo_checkpoint()


def models(nvlabs: Path | None, folder: Path) -> list[tuple[str, Path]]:
    found = [("demo stylegan2-compact 32 px", DEMO)]
    if nvlabs is not None and (nvlabs / "sg3-t-64.pkl").is_file():
        from trainer.importers import import_network
        for name, label in (("sg3-t-64", "stylegan3-t 64 px (NVlabs fixture)"),
                            ("sg2ada-uncond-64", "stylegan2 64 px (NVlabs fixture)")):
            import_network(nvlabs / f"{name}.pkl", folder / f"{name}.safetensors")
            found.append((label, folder / f"{name}.safetensors"))
    return found


def measure(renderer: Renderer, variants: dict, rounds: int, renders: int) -> dict[str, list[float]]:
    """variant -> per-round median ms; every render draws a new seed."""
    per_round = {name: [] for name in variants}
    seed = 0
    for _ in range(rounds):
        for name, choice in variants.items():
            times = []
            for _ in range(renders):
                seed += 1
                result = renderer.render(RenderRequest(seed, renderer.generation, LatentState(seed=seed), layer=choice))
                assert not result.error and (choice is None or not result.layer.error), result.error
                times.append(result.milliseconds)
            per_round[name].append(statistics.median(times))
    return per_round


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--renders", type=int, default=5, help="renders per variant in a round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nvlabs", type=Path, default=os.environ.get("NVLABS_FIXTURES", ROOT.parent / "shared" / "fixtures" / "nvlabs"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "layer_view.txt")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lines = [f"layer view cost: ms per image on {args.device}, {args.threads} thread(s), median over {args.rounds} "
             f"rounds of the median of {args.renders} renders (new seed each); load average "
             f"{os.getloadavg()[0]:.1f} at start", ""]
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models(args.nvlabs if args.nvlabs and args.nvlabs.is_dir() else None, Path(tmp)):
            renderer = Renderer(args.device)
            renderer.load(path)
            layers = [layer for layer in list_layers(renderer.G) if layer.kind == "conv"]
            big = max(layers, key=lambda layer: layer.channels * layer.height * layer.width)
            variants = {"no layer": None, "grid + spectrum": LayerChoice(big.name),
                        "one channel + spectrum": LayerChoice(big.name, channel=0)}
            measure(renderer, variants, 1, 2)   # warm-up
            per_round = measure(renderer, variants, args.rounds, args.renders)
            base = per_round["no layer"]
            lines.append(f"{label}: layer {big.name} ({big.channels} x {big.height}x{big.width}); the hook was put "
                         f"on {renderer.layer_capture.hooks_registered} times for "
                         f"{2 * (args.rounds * args.renders + 2)} renders with it (once a round: "
                         f"each round without a layer lets it go)")
            for name, times in per_round.items():
                ratio = statistics.median(t / b for t, b in zip(times, base))
                lines.append(f"  {name:24s} {statistics.median(times):8.2f} ms   x{ratio:.2f}")
            print("\n".join(lines[-4:]), flush=True)
    lines.append(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
