"""One meaning for every latent setting: seed -> z, class -> c, truncation, mixing, noise modes.

The CLI, the metrics, the studio, inversion and timelines all turn settings into latents here, so
the same settings draw the same pixels everywhere. Two kinds of latent state exist:
- "from settings": a seed (z = RandomState(seed).randn(z_dim), as in NVlabs' tools), a class, a
  truncation (ψ, cutoff, centre), a style mix and direction offsets;
- explicit: a W+ latent `ws [num_ws, w_dim]` (an inverted photo, a chosen mix, a keyframe) that is
  final. Truncation is applied to it only when the state asks for a ψ other than 1; a state made
  with `LatentState.explicit` starts at ψ 1, so it reproduces its latent exactly.

Models without a W space (DCGAN, 2-D points) truncate in Z, one way only: components of z beyond
the threshold are resampled (a truncated normal, as in BigGAN). ψ does not apply to them.
StyleGAN3 models also take translate x / y and rotate, written into their input transform per render.

Parts: `space` (seeds, classes, truncation, mixing, directions, the transform matrix), `state` (the
LatentState and its files), `synthesis` (states -> tensors and images on one generator).
"""
from trainer.latents.space import (MAX_SEED, check_seed, direction_offset, layer_groups, mix_layers,
                                   parse_seeds, pca_directions, resolve_class, sample_z, seed_to_z,
                                   stylegan3_transform, truncate)
from trainer.latents.state import (DEFAULT_PSI, MAX_ROTATE_DEG, MAX_TRANSLATE, NOISE_MODES, TRUNCATION_CENTERS,
                                   LatentState, default_truncation_center, json_value,
                                   state_from_workspace)
from trainer.latents.synthesis import (CLASS_MEAN_SAMPLES, CLASS_MEAN_SEED, LatentMapper, estimate_class_means,
                                       fitted_noise, has_input_transform, input_transform, noise_layers,
                                       noise_override, synthesize)

__all__ = ["MAX_SEED", "check_seed", "direction_offset", "layer_groups", "mix_layers", "parse_seeds",
           "pca_directions", "resolve_class", "sample_z", "seed_to_z", "stylegan3_transform", "truncate",
           "DEFAULT_PSI", "MAX_ROTATE_DEG", "MAX_TRANSLATE", "NOISE_MODES", "TRUNCATION_CENTERS", "LatentState",
           "default_truncation_center",
           "json_value", "state_from_workspace", "CLASS_MEAN_SAMPLES", "CLASS_MEAN_SEED", "LatentMapper",
           "estimate_class_means", "fitted_noise", "has_input_transform", "input_transform", "noise_layers",
           "noise_override", "synthesize"]
