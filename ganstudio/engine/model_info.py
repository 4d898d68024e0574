"""What the widgets know about the open model (ModelInfo: plain values only), and how it is read
off a loaded generator."""
from __future__ import annotations

from dataclasses import dataclass

from trainer.latents import has_input_transform, noise_layers


@dataclass(frozen=True)
class ModelInfo:
    """What the widgets need to know about the open model (plain values only)."""
    path: str
    arch: str
    step: int
    kimg: float
    z_dim: int
    c_dim: int
    w_dim: int                  # 0 for models without W
    num_ws: int                 # 0 for models without W: the studio works in Z
    img_resolution: int         # 0 for 2-D point models
    img_channels: int
    class_names: tuple[str, ...]
    layer_resolutions: tuple[int, ...]   # output resolution each ws layer feeds
    dataset: str
    generation: int             # increases with each load; requests name the one they were built for
    sha256: str = ""            # of the checkpoint file: caches, timelines and inversions name it
    note: str = ""              # what loading found worth saying (e.g. an old file without a checksum)
    translation: str = ""       # "pix2pix" / "cyclegan" for image-to-image models (no latent), else ""
    directions: tuple[str, ...] = ()     # what an image-to-image model translates: "AtoB", "BtoA"
    in_channels: int = 0        # input channels of an image-to-image model in its own direction
    domains: tuple[str, ...] = ()        # names of domains A and B ("edges", "fashion")
    transformable: bool = False # StyleGAN3: translate x / y and rotate move the image (its input transform)
    has_noise: bool = False     # the synthesis layers take per-pixel noise (StyleGAN2; not StyleGAN3)

    @property
    def translates(self) -> bool:
        return bool(self.translation)

    @property
    def has_w(self) -> bool:
        return self.num_ws > 0

    @property
    def is_points(self) -> bool:
        return self.img_resolution == 0


def latent_model_info(G, sha256: str, generation: int) -> ModelInfo:
    """ModelInfo of a generator with a latent (its checkpoint_info as load_generator sets it)."""
    ckpt = G.checkpoint_info
    ds = ckpt.get("dataset", {})
    names = tuple(str(n) for n in ds.get("class_names", [])) if G.c_dim else ()
    if len(names) != G.c_dim:
        names = tuple(f"class {i}" for i in range(G.c_dim))
    return ModelInfo(path=ckpt["path"], arch=ckpt["config"]["arch"], step=ckpt["step"], kimg=ckpt["kimg"],
                     z_dim=G.z_dim, c_dim=G.c_dim, w_dim=getattr(G, "w_dim", 0), num_ws=G.num_ws,
                     img_resolution=G.img_resolution, img_channels=G.img_channels, class_names=names,
                     layer_resolutions=layer_resolutions(G), dataset=str(ds.get("name", "")),
                     generation=generation, sha256=sha256, note=ckpt.get("note", ""),
                     transformable=has_input_transform(G), has_noise=bool(G.num_ws and noise_layers(G)))


def translation_model_info(G, sha256: str, generation: int) -> ModelInfo:
    """ModelInfo of a Pix2Pix / CycleGAN generator (no latent)."""
    from trainer.translation import directions
    ckpt = G.checkpoint_info
    ds = ckpt.get("dataset", {})
    return ModelInfo(path=ckpt["path"], arch=ckpt["config"]["arch"], step=ckpt["step"], kimg=ckpt["kimg"],
                     z_dim=0, c_dim=0, w_dim=0, num_ws=0, img_resolution=G.img_resolution,
                     img_channels=G.img_channels, class_names=(), layer_resolutions=(),
                     dataset=str(ds.get("name", "")), generation=generation, sha256=sha256,
                     note=ckpt.get("note", ""), translation=ckpt["config"]["arch"], directions=directions(G),
                     in_channels=G.in_channels, domains=tuple(str(d) for d in ds.get("domains", ("A", "B")))[:2])


def layer_resolutions(G) -> tuple[int, ...]:
    """For each ws layer, the resolution of the synthesis layer that reads it (4, 8, 8, 16, ...);
    for StyleGAN3 the sampling rate (pixels per image width, margin left out) of the input (ws 0)
    and of each layer's output (ws i + 1)."""
    if not getattr(G, "num_ws", 0):
        return ()
    if has_input_transform(G):
        return (int(G.synthesis.input.sampling_rate), *(int(layer.out_sampling_rate) for layer in G.synthesis.layers))
    out, index = [], 0
    for block in G.synthesis.blocks:
        for _ in range(block.num_conv):
            out.append(block.resolution)
            index += 1
    out += [G.synthesis.blocks[-1].resolution] * (G.num_ws - len(out))  # the last toRGB
    return tuple(out)
