"""Workspace -> what to render: the latent, the mixing grid and the render request a workspace asks
for on a given model (the same conversion the headless `ganstudio-train generate --workspace` makes)."""
from __future__ import annotations

import numpy as np

from trainer.latents import LatentState, state_from_workspace
from trainer.models.blend import BlendSpec

from .layers import LayerChoice
from .model_info import ModelInfo
from .renderer import GRID_PHOTO_PLACES, MixingGrid, RenderRequest
from .workspace import LATENT_FIELDS


def latent_from_workspace(ws, info: ModelInfo) -> LatentState:
    """The latent the workspace shows on the model `info` describes (the same conversion the
    headless `ganstudio-train generate --workspace` makes)."""
    return state_from_workspace({name: getattr(ws, name) for name in LATENT_FIELDS},
                                info.c_dim, info.num_ws, info.w_dim)


def grid_from_workspace(ws, info: ModelInfo) -> MixingGrid:
    """The mixing grid the workspace asks for on the model `info` describes (the photo only where
    its W+ fits that model)."""
    photo = ws.photo_ws
    fits = photo is not None and ws.grid_photo in GRID_PHOTO_PLACES[1:] and photo.shape == (info.num_ws, info.w_dim)
    return MixingGrid(tuple(ws.grid_row_seeds), tuple(ws.grid_col_seeds),
                      photo_ws=np.array(photo, dtype=np.float32) if fits else None,
                      photo_as=ws.grid_photo if fits else "",
                      photo_noise={k: np.array(v, dtype=np.float32) for k, v in ws.photo_noise.items()} if fits else None)


def request_from_workspace(ws, info: ModelInfo, request_id: int, grid: bool = False,
                           blend: BlendSpec | None = None, layer: LayerChoice | None = None) -> RenderRequest:
    """Freeze the workspace into a request for the model `info` describes (blended as `blend` asks)."""
    latent = latent_from_workspace(ws, info)
    if grid:
        return RenderRequest(request_id, info.generation, latent.replace(ws=None), grid=grid_from_workspace(ws, info),
                             blend=blend)
    return RenderRequest(request_id, info.generation, latent, blend=blend, layer=layer)
