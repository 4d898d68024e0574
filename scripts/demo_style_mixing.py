"""The README figure of style mixing on the bundled demo: coarse (left) and fine (right) layers taken
from the column latents. Run from the repository root: python scripts/demo_style_mixing.py"""
import torch, numpy as np
from trainer import load_generator
from trainer.images import to_uint8, make_grid
torch.set_num_threads(1)
G = load_generator("assets/demo")
names = G.checkpoint_info["dataset"].get("class_names")
def w(seed, cls):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    return G.mapping(z, torch.tensor([cls]), truncation_psi=1.0)
rows = [(0, 0), (1, 2), (2, 4), (3, 6)]          # (seed, class): T-shirt, Pullover, Coat, Shirt
cols = [(10, 3), (11, 1), (12, 8), (13, 9)]      # Dress, Trouser, Bag, Ankle boot
def grid(layers):
    tiles = [torch.full((1, 1, 32, 32), -1.0)] + [G.synthesis(w(*c), noise_mode="const") for c in cols]
    for r in rows:
        base = w(*r)
        tiles.append(G.synthesis(base, noise_mode="const"))
        for c in cols:
            mixed = base.clone(); mixed[:, layers] = w(*c)[:, layers]
            tiles.append(G.synthesis(mixed, noise_mode="const"))
    return make_grid(to_uint8(torch.cat(tiles)), 5, pad=2)
with torch.no_grad():
    a = grid(slice(0, 3)); b = grid(slice(5, 8))
pad = np.full((a.shape[0], 12, 3), 255, np.uint8)
img = np.concatenate([a, pad, b], axis=1)
from PIL import Image
Image.fromarray(img).resize((img.shape[1]*3, img.shape[0]*3), Image.NEAREST).save("assets/readme/demo-style-mixing.png")
print(names)
