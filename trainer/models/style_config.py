"""The config fields and checks NVlabs' style-based generators share (StyleGAN, StyleGAN2): each
arch's config (stylegan1.StyleGAN1GeneratorConfig, stylegan2_nvlabs.NVlabsGeneratorConfig)
derives from it and adds its own."""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config import ConfigError, _Config, _opt


@dataclass
class StyleGeneratorConfig(_Config):
    """What NVlabs' style-based generators (StyleGAN and StyleGAN2) share: a mapping network from z
    (and a class) to w, and a synthesis network over power-of-two resolutions whose feature maps
    at resolution r are min(channel_base // r, channel_max). Each arch's config adds its own fields."""
    arch: str = _opt("", "architecture name in the registry")
    z_dim: int = _opt(512, "input latent dimensions")
    c_dim: int = _opt(0, "classes (one-hot label length); 0 = unconditional")
    w_dim: int = _opt(512, "intermediate latent dimensions")
    img_resolution: int = _opt(1024, "output resolution, a power of two")
    img_channels: int = _opt(3, "output channels")
    mapping_layers: int = _opt(8, "fully connected layers in the mapping network")
    embed_features: int = _opt(0, "label embedding width (0 for unconditional models)")
    layer_features: int = _opt(512, "width of the hidden mapping layers")
    mapping_lr_multiplier: float = _opt(0.01, "the mapping network's learning-rate multiplier (scales its weights)")
    w_avg_beta: float = _opt(0.995, "decay of the w_avg tracking during training")
    channel_base: int = _opt(32768, "feature maps at resolution r are min(channel_base // r, channel_max)")
    channel_max: int = _opt(512, "cap on feature maps")
    use_noise: bool = _opt(True, "per-layer noise inputs")

    def validate(self) -> None:
        super().validate()
        r = self.img_resolution
        if r < 4 or r & (r - 1):
            raise ConfigError(f"img_resolution must be a power of two >= 4, got {r}")
        for name in ("z_dim", "w_dim", "img_channels", "mapping_layers", "layer_features", "channel_base",
                     "channel_max"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.c_dim < 0 or self.embed_features < 0:
            raise ConfigError("c_dim and embed_features cannot be negative")
        if self.c_dim and not self.embed_features:
            raise ConfigError("a conditional model needs embed_features > 0")
