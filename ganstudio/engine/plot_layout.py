"""Which logged quantity the monitor draws in which plot: data, no Qt."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlotSpec:
    key: str
    title: str
    scalars: tuple[str, ...] = ()      # scalar names shown here, in legend order
    metrics: str = ""                  # metrics whose name starts with this ("fid", "kid")
    metric_names: tuple[str, ...] = ()  # metrics shown here by their exact name
    scalar_prefix: str = ""            # scalars whose name starts with this ("classes/")
    catch_all: bool = False            # metrics and scalars no other plot shows


PLOTS = (
    PlotSpec("losses", "D and G losses", ("loss/D", "loss/G")),
    PlotSpec("d_outputs", "D(real) / D(fake)", ("D/real", "D/fake")),
    # Progressive growing (progan, stylegan1): the resolution of the moment steps up from 4 px; alpha
    # climbs from 0 to 1 while each new resolution fades in (separate plots: their scales differ
    # 30-fold). Beside the losses, in the first screen: a loss jump means little without the level.
    PlotSpec("resolution", "Growth: resolution (px)", ("progress/resolution",)),
    PlotSpec("fade", "Growth: fade-in alpha", ("progress/alpha",)),
    PlotSpec("wasserstein", "Wasserstein estimate", ("wasserstein",)),
    PlotSpec("penalties", "Penalties (GP, R1, PL)", ("gp", "r1", "pl")),
    PlotSpec("lr", "Learning rates", ("lr/G", "lr/D")),
    PlotSpec("speed", "Speed (img/s)", ("speed/img_s",)),
    # ADA's p beside r_t, the overfitting signal that moves it (p in [0, 1], r_t in [-1, 1], target 0.6)
    PlotSpec("ada", "ADA: augment p, r_t", ("ada/p", "ada/rt")),
    PlotSpec("fid", "FID", metrics="fid"),
    PlotSpec("kid", "KID", metrics="kid"),
    # The collapse alarm's figures beside recall, so a researcher sees diversity fall as it falls.
    PlotSpec("diversity", "Diversity (recall, near-duplicates)",
             metric_names=("recall", "precision", "near_duplicates", "high_quality")),
    PlotSpec("classes", "Classes: generated shares, TVD",
             metric_names=("class_tvd", "class_accuracy"), scalar_prefix="classes/"),
    PlotSpec("other", "Other metrics and scalars", catch_all=True),
)


def plot_for(name: str, is_metric: bool) -> str:
    """The key of the plot that shows a scalar or metric called `name`."""
    for spec in PLOTS:
        if (spec.metrics and is_metric and name.lower().startswith(spec.metrics)) or \
                (is_metric and name in spec.metric_names) or \
                (not is_metric and (name in spec.scalars or
                                    (spec.scalar_prefix and name.startswith(spec.scalar_prefix)))):
            return spec.key
    return "other"
