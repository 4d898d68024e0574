"""Config dataclasses as command-line options: one `--field-name` per field, parsed into nested
overrides, shared by the GAN trainer's CLI and the image-to-image one."""
from __future__ import annotations

import argparse
import dataclasses


class ConfigHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: not when it is None (a config option's None means "keep the
    preset's value", and its help states the config's own default) nor when the help already says it."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_config_options(parser: argparse.ArgumentParser,
                       sections,                   # ((section name, config dataclass), ...)
                       aliases: dict[str, list[str]] | None = None,  # field name -> more flags
                       ) -> None:
    """An argument group per section; dest "section.field", default None (not given)."""
    preset = parser.get_default("preset")
    origin = f"the --preset ({preset} unless given)" if preset else "the preset"
    for section, cls in sections:
        group = parser.add_argument_group(
            f"{section} options", f"An option left out keeps the value of {origin}, of --config or of the "
                                  "resumed run; where those do not set it, the default shown.")
        for f in dataclasses.fields(cls):
            flags = ["--" + f.name.replace("_", "-"), *(aliases or {}).get(f.name, [])]
            kwargs = {"dest": f"{section}.{f.name}", "default": None,
                      "help": f"{f.metadata['help']} (default: {f.default!r})".replace("%", "%%")}
            if f.type in ("bool", bool):
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = {"int": int, "float": float, "str": str}.get(f.type, f.type)
                if "choices" in f.metadata:
                    kwargs["choices"] = f.metadata["choices"]
            group.add_argument(*flags, **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The config options given on the command line -> {section: {field: value}}."""
    overrides: dict = {}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".")
            overrides.setdefault(section, {})[name] = value
    return overrides
