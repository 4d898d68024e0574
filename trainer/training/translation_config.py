"""The names image-to-image code imported from here before the two kinds of run shared one
RunConfig: the sections now live in trainer.config and the presets in trainer.training.presets.
Import them from there; this module only keeps older imports working."""
from __future__ import annotations

from trainer.config import (DIRECTIONS, TRANSLATION_ARCHS, RunConfig, TranslationDataConfig,  # noqa: F401
                            TranslationModelConfig, TranslationTrainConfig, is_translation_config)
from trainer.training.presets import PRESETS, preset_config  # noqa: F401

RUN_KIND = "translation"
TranslationRunConfig = RunConfig   # reads a translation run's config.json (old "kind" or new "task")
TRANSLATION_PRESETS = {name: p for name, p in PRESETS.items() if p["task"] == RUN_KIND}

__all__ = ["DIRECTIONS", "PRESETS", "RUN_KIND", "TRANSLATION_ARCHS", "TRANSLATION_PRESETS", "TranslationDataConfig",
           "TranslationModelConfig", "TranslationRunConfig", "TranslationTrainConfig", "is_translation_config",
           "preset_config"]
