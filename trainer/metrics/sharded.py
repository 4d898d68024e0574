"""Feature extraction of generated images shared by the processes of a distributed run: each
rank generates and embeds batches rank, rank + world, ... and rank 0 gathers them back into the
order one process would have produced, so the figures do not depend on the process count and
the time falls with it."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from trainer.training.distributed import Ranks
from trainer.metrics.features import generator_batches


def sharded_generator_features(net: torch.nn.Module, G: torch.nn.Module, count: int, batch: int, device,
                               ranks: Ranks, seed: int = 0, labels: torch.Tensor | None = None,
                               truncation_psi: float = 1.0) -> np.ndarray | None:
    """Features [count, D] of G's `count` samples (as features.generator_source would give them)
    on rank 0; None on the other ranks. Every rank must call it."""
    mine = []
    with torch.inference_mode():
        for images, _ in generator_batches(G, count, batch, device, seed, labels, truncation_psi,
                                           shard=(ranks.rank, ranks.world)):
            mine.append(net(images.to(device)).float().cpu().numpy())
    if not ranks.active:
        return np.concatenate(mine)
    gathered = [None] * ranks.world if ranks.is_main else None
    dist.gather_object(mine, gathered, dst=0)
    if not ranks.is_main:
        return None
    batches = []
    for index in range(sum(len(g) for g in gathered)):   # batch i was made by rank i % world
        batches.append(gathered[index % ranks.world][index // ranks.world])
    return np.concatenate(batches)
