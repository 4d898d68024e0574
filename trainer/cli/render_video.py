"""`ganstudio-train render-video`: a timeline file, or a preset, rendered to MP4, GIF or PNGs headless.

The frames are the studio's: the same TimelineRenderer, the same LatentMapper, the same chunks.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from trainer.cli.common import (CommandFailed, UsageError, add_device_option, add_threads_option, command_parser,
                                note, number, parse_command_line, require_latent_model, subcommand)

NAME = "render-video"
CLI_PRESETS = ("seed-walk", "truncation-sweep", "class-tour", "noise-loop", "style-morph")


def parser() -> argparse.ArgumentParser:
    from trainer.latents import DEFAULT_PSI, TRUNCATION_CENTERS
    from trainer.film.timeline import MAX_FPS, MAX_KEYFRAME_SECONDS
    from trainer.film.video import RESIZE_FILTERS
    p = command_parser(NAME, "Render a timeline (a .timeline.json saved by the studio) or a preset to a video: "
                             ".mp4 (H.264), .gif, or a folder of PNG frames. The frames are the ones the studio "
                             "shows.")
    p.add_argument("timeline", nargs="?", default=None, help="a timeline file (omit it to use --preset)")
    p.add_argument("--checkpoint", default=None,
                   help="a .safetensors export or a run directory; default: the timeline's own checkpoint")
    p.add_argument("--out", required=True, help="film.mp4, film.gif, or a folder name for PNG frames")
    p.add_argument("--fps", type=number(float, above=0, high=MAX_FPS), default=None,
                   help=f"frames per second, up to {MAX_FPS} (default: the timeline's, or 30)")
    p.add_argument("--size", type=number(int, 1, 2048), default=None,
                   help="output side in pixels, up to 2048 (default: the frames' own side, enlarged by a whole "
                        "factor to at least 256)")
    p.add_argument("--filter", default="lanczos", choices=sorted(RESIZE_FILTERS), help="resize filter")
    p.add_argument("--quality", type=number(int, 1, 100), default=80, help="MP4 quality 1-100 (x264 CRF 40-10)")
    p.add_argument("--grid", type=number(int, 1, 64), default=1,
                   help="a grid video of this many cells, each the timeline from other seeds (+1, +2 ...)")
    add_device_option(p)
    add_threads_option(p)
    p.add_argument("--audio", default=None, metavar="SOUND",
                   help="a sound file (WAV, MP3, FLAC ...) that drives the film and is muxed into an MP4")
    p.add_argument("--audio-map", action="append", default=[], metavar="FEATURE:psi:GAIN[:SMOOTHING]",
                   help="what the sound drives (repeatable): loudness or onsets scale psi by 1 + GAIN x the "
                        "curve, smoothed over SMOOTHING seconds (default loudness:psi:0.5:0.1)")
    g = p.add_argument_group("presets (without a timeline file)")
    g.add_argument("--preset", choices=CLI_PRESETS, default=None)
    g.add_argument("--seeds", default="0-3", help="seed-walk and style-morph: the seeds; others: the first is used")
    g.add_argument("--seconds-per-key", type=number(float, above=0, high=MAX_KEYFRAME_SECONDS), default=2.0, help="seconds between keyframes")
    g.add_argument("--psi", type=number(float, -5, 5), default=DEFAULT_PSI, help="truncation psi of every keyframe")
    g.add_argument("--trunc-center", default=None, choices=TRUNCATION_CENTERS,
                   help="toward w_avg (global) or each keyframe's class mean (default: class for conditional "
                        "models, as the studio; global otherwise)")
    g.add_argument("--class", dest="class_index", type=number(int, 0), default=None, help="class (conditional models)")
    g.add_argument("--psi-range", default="0,1.2", help="truncation-sweep: from,to")
    g.add_argument("--no-loop", action="store_true", help="seed-walk: stop on the last seed")
    return p


def build_preset(args, G, checkpoint: str):
    from trainer.latents import LatentState, default_truncation_center, parse_seeds
    from trainer.files import file_sha256
    from trainer.film.timeline import TimelineError
    from trainer.film.presets import class_tour, noise_loop, seed_walk, style_morph, truncation_sweep
    seeds = parse_seeds(args.seeds)
    fps = args.fps or 30.0
    center = args.trunc_center or default_truncation_center(G.c_dim, bool(G.num_ws))
    base = LatentState(psi=args.psi, truncation_center=center,
                       class_index=args.class_index if G.c_dim else None)
    files = {"checkpoint": str(checkpoint), "sha": file_sha256(G.checkpoint_info["path"])}
    if args.preset == "seed-walk":
        return seed_walk(seeds, args.seconds_per_key, fps, base, loop=not args.no_loop, G=G, **files)
    if args.preset == "style-morph":
        if not G.num_ws:
            raise TimelineError("a style morph needs a model with a W space")
        return style_morph(seeds, max(1, G.num_ws // 2), args.seconds_per_key, fps, base, G=G, **files)
    if args.preset == "truncation-sweep":
        try:
            low, high = (float(x) for x in args.psi_range.split(","))
        except ValueError:
            raise UsageError(f"--psi-range {args.psi_range!r}: expected FROM,TO, e.g. 0,1.2") from None
        if not all(math.isfinite(v) and abs(v) <= 5 for v in (low, high)):
            raise UsageError(f"--psi-range {args.psi_range}: expected psi values from -5 to 5")
        return truncation_sweep(seeds[0], low, high, args.seconds_per_key, fps, base, G=G, **files)
    if args.preset == "class-tour":
        return class_tour(G.c_dim, seeds[0], args.seconds_per_key, fps, base, G=G, **files)
    return noise_loop(G.z_dim, seeds[0], keys=8, seconds=8 * args.seconds_per_key, fps=fps, base=base, G=G, **files)


def sound_track(args, timeline):
    """The --audio and --audio-map options as the timeline's AudioTrack (a file's own track otherwise)."""
    from trainer.film.audio import AudioMapping, AudioTrack
    if not args.audio:
        if args.audio_map:
            raise ValueError("--audio-map needs --audio")
        return timeline.audio
    mappings = []
    for text in args.audio_map or ["loudness:psi:0.5:0.1"]:
        parts = text.split(":")
        if len(parts) not in (3, 4) or parts[1] != "psi":
            raise ValueError(f"--audio-map {text!r}: expected FEATURE:psi:GAIN[:SMOOTHING], e.g. loudness:psi:0.5")
        try:
            numbers = [float(x) for x in parts[2:]]
        except ValueError:
            raise ValueError(f"--audio-map {text!r}: GAIN and SMOOTHING are numbers") from None
        mappings.append(AudioMapping(parts[0], "psi", *numbers))
    return AudioTrack(str(Path(args.audio).absolute()), tuple(mappings))


def read_timeline(path, checkpoint_arg):
    """(timeline, checkpoint path to open): the timeline's checkpoint is relative to its file."""
    from trainer.film.timeline import Timeline, TimelineError
    timeline = Timeline.load(path).located(path)
    checkpoint = checkpoint_arg or timeline.checkpoint
    if not checkpoint:
        raise TimelineError(f"{path} names no checkpoint: give --checkpoint")
    if not Path(checkpoint).exists():
        raise TimelineError(f"the timeline's checkpoint {checkpoint} is missing: give --checkpoint")
    return timeline, checkpoint


@subcommand(NAME)
def main(argv: list[str]) -> None:
    args = parse_command_line(parser(), argv)
    import torch
    from tqdm import tqdm
    from trainer.checkpoint import load_generator
    from trainer.files import file_sha256
    from trainer.film.timeline import TimelineError
    from trainer.film.render import TimelineRenderer
    from trainer.film.video import ExportError, ExportSettings, check_export, export_timeline
    if args.timeline and args.preset:
        raise UsageError("give a timeline file or --preset, not both")
    if not args.timeline and not args.preset:
        raise UsageError("give a timeline file, or --preset and --checkpoint")
    if args.timeline:
        timeline, checkpoint = read_timeline(args.timeline, args.checkpoint)
    elif not args.checkpoint:
        raise UsageError("--preset needs --checkpoint")
    else:
        checkpoint = args.checkpoint
    try:
        settings = ExportSettings(args.out, size=args.size, resize_filter=args.filter, quality=args.quality)
        settings.kind   # a bad suffix is refused before the model loads
        G = load_generator(checkpoint, device=args.device)
        require_latent_model(G, checkpoint)
        if args.timeline:
            if args.fps:
                timeline = timeline.replace(fps=args.fps)
            sha = timeline.checkpoint_sha256
            if sha and sha != file_sha256(G.checkpoint_info["path"]):
                note(NAME, f"{Path(G.checkpoint_info['path']).name} is not the checkpoint the timeline was made on "
                           "(another sha256); its model matches, so the frames will differ")
        else:
            timeline = build_preset(args, G, checkpoint)
        timeline = timeline.replace(audio=sound_track(args, timeline))
        if not 1 <= args.grid <= 64:
            raise UsageError(f"--grid {args.grid}: expected 1 to 64 cells")
        renderers = [TimelineRenderer(G, timeline.with_seed_offset(k) if k else timeline) for k in range(args.grid)]
        check_export(settings, G.img_resolution * math.ceil(math.sqrt(args.grid)))   # grids are square frames
    except ExportError as exc:   # a RuntimeError; before any frame, it is the settings' fault
        raise UsageError(str(exc)) from exc
    with tqdm(total=timeline.frame_count, unit="frame", desc=Path(args.out).name) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = min(int(round(fraction / 0.98 * timeline.frame_count)), timeline.frame_count)
            bar.refresh()

        try:
            with torch.inference_mode():
                report = export_timeline(renderers if args.grid > 1 else renderers[0], settings, progress)
        except (ExportError, TimelineError, OSError) as exc:
            raise CommandFailed(str(exc)) from exc
    print(f"wrote {report.frames} frames ({report.size}x{report.size}, {timeline.fps:g} fps) to {report.path} "
          f"in {report.seconds:.1f} s ({report.fps:.1f} frames/s)")
