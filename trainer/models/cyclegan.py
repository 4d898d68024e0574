"""CycleGAN (Zhu et al., 2017): two ResNet generators (A -> B and B -> A) and two PatchGAN
discriminators, one per domain.

The generator is Johnson et al.'s: a 7x7 convolution, two stride-2 downsamplings, residual
blocks at a quarter of the resolution, two transposed-convolution upsamplings, a 7x7
convolution to the output with tanh; reflection padding, instance norm by default. The export
holds both generators in one module (`a_to_b.*`, `b_to_a.*`), so the studio can translate
either way and show the round trip.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from trainer.models.pix2pix import PatchDiscriminator, check_images, init_weights, norm_layer

PREFIX_A_TO_B, PREFIX_B_TO_A = "a_to_b", "b_to_a"   # the two generators' tensor name prefixes


class ResidualBlock(nn.Module):
    def __init__(self,
                 channels: int,   # feature maps in and out
                 norm: str,       # "batch" or "instance"
                 ):
        super().__init__()
        bias = norm == "instance"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """Images [N, in_channels, R, R] in [-1, 1] -> [N, out_channels, R, R] in [-1, 1]; R divisible by 4."""

    def __init__(self,
                 in_channels: int,        # channels of the input domain
                 out_channels: int,       # channels of the output domain
                 img_resolution: int,     # image side in pixels, divisible by 4
                 width: int = 64,         # feature maps of the first layer (ngf); 4x in the residual blocks
                 blocks: int = 9,         # residual blocks (the paper: 9 at 256 px, 6 at 128 px)
                 norm: str = "instance",  # "batch" or "instance"
                 ):
        super().__init__()
        if img_resolution % 4:
            raise ValueError(f"the ResNet generator halves the image twice: the resolution must divide by 4, "
                             f"got {img_resolution}")
        self.in_channels, self.img_channels, self.img_resolution = in_channels, out_channels, img_resolution
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), norm_layer(norm, width), nn.ReLU()]
        for factor in (1, 2):
            layers += [nn.Conv2d(width * factor, width * factor * 2, 3, 2, 1, bias=bias),
                       norm_layer(norm, width * factor * 2), nn.ReLU()]
        layers += [ResidualBlock(width * 4, norm) for _ in range(blocks)]
        for factor in (4, 2):
            layers += [nn.ConvTranspose2d(width * factor, width * factor // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_layer(norm, width * factor // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, self.img_resolution, "the CycleGAN generator")
        return self.body(x)


class CycleGANGenerators(nn.Module):
    """Both generators of a CycleGAN: `a_to_b` and `b_to_a`. Called as a module it translates in
    its configured `direction`; `translate` takes either, `round_trip` goes there and back."""

    translates = True
    z_dim = c_dim = num_ws = 0

    def __init__(self,
                 a_channels: int,         # channels of domain A
                 b_channels: int,         # channels of domain B
                 img_resolution: int,     # image side in pixels
                 width: int = 64,         # ngf of each generator
                 blocks: int = 9,         # residual blocks of each generator
                 norm: str = "instance",  # "batch" or "instance"
                 direction: str = "AtoB", # the default direction of __call__ and the studio
                 ):
        super().__init__()
        self.a_to_b = ResNetGenerator(a_channels, b_channels, img_resolution, width, blocks, norm)
        self.b_to_a = ResNetGenerator(b_channels, a_channels, img_resolution, width, blocks, norm)
        self.direction = direction
        self.img_resolution = img_resolution
        forward_net = self.a_to_b if direction == "AtoB" else self.b_to_a
        self.in_channels, self.img_channels = forward_net.in_channels, forward_net.img_channels

    def generator(self, direction: str | None = None) -> ResNetGenerator:
        direction = direction or self.direction
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        return self.a_to_b if direction == "AtoB" else self.b_to_a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator()(x)

    def translate(self, images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """images [N, C_in, R, R] in [-1, 1] -> translated [N, C_out, R, R] (direction None: the default)."""
        return self.generator(direction)(images)

    def round_trip(self, images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """There and back: B->A(A->B(x)) for AtoB; the cycle the training made close to x."""
        direction = direction or self.direction
        back = "BtoA" if direction == "AtoB" else "AtoB"
        return self.generator(back)(self.generator(direction)(images))


class CycleGANDiscriminators(nn.Module):
    """One PatchGAN per domain: `d_a` judges images of A, `d_b` images of B."""

    def __init__(self,
                 a_channels: int,      # channels of domain A
                 b_channels: int,      # channels of domain B
                 width: int = 64,      # ndf
                 layers: int = 3,      # strided layers (3: 70x70 patches)
                 norm: str = "instance",
                 ):
        super().__init__()
        self.d_a = PatchDiscriminator(a_channels, width, layers, norm)
        self.d_b = PatchDiscriminator(b_channels, width, layers, norm)


def _domain_channels(cfg) -> tuple[int, int]:
    """(A's channels, B's channels) from the config's input/output channels and direction."""
    return (cfg.in_channels, cfg.out_channels) if cfg.direction == "AtoB" else (cfg.out_channels, cfg.in_channels)


def build_cyclegan_generators(cfg) -> CycleGANGenerators:
    a, b = _domain_channels(cfg)
    return CycleGANGenerators(a, b, cfg.img_resolution, cfg.g_width, cfg.blocks, cfg.norm, cfg.direction)


def build_cyclegan_discriminators(cfg) -> CycleGANDiscriminators:
    a, b = _domain_channels(cfg)
    return CycleGANDiscriminators(a, b, cfg.d_width, cfg.d_layers, cfg.norm)
