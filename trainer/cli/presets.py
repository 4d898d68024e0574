"""`ganstudio-train presets`: the named starting configurations, GAN and image-to-image."""
from __future__ import annotations

from trainer.cli.common import command_parser, parse_command_line, subcommand

NAME = "presets"


def parser():
    return command_parser(NAME, "List the presets `ganstudio-train --preset NAME` starts from, with the "
                                "architecture, loss and data each one sets.")


@subcommand(NAME)
def main(argv: list[str]) -> None:
    parse_command_line(parser(), argv)
    from trainer.training.presets import PRESETS
    for name, preset in sorted(PRESETS.items()):
        model, train, data = (preset.get(section, {}) for section in ("model", "train", "data"))
        kind = (f"data={data.get('source')} (image-to-image)" if preset.get("task") == "translation"
                else f"conditional={data.get('conditional', False)}")
        print(f"{name:16s} arch={model.get('arch', 'stylegan2'):10s} loss={train.get('loss', 'nonsat'):8s} {kind}")
