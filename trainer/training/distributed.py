"""Training on several processes with PyTorch's own engine.

`torchrun` starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK;
torch.distributed connects them (NCCL between GPUs, gloo between CPUs; torchrun's rendezvous
across machines); DistributedDataParallel averages the gradients. This module holds the few
decisions the loop needs on top:

- how the global batch is laid out: [processes, rounds, batch_gpu], each process takes its own
  contiguous share and works through it in rounds of batch_gpu images (gradient accumulation),
  so a given image meets the same batch-norm / minibatch-std group however many processes run;
- the seed of every micro-batch, derived from (seed, phase, counter, its index in the global
  batch): each process draws different latents, noise and augmentations, and a run draws the
  same ones whether it runs on 1 process or 8, so resuming on another count continues it;
- agreement: a stop request or a failure on any rank stops every rank at the same step.
"""
from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from trainer.config import ConfigError

PHASES = {"D": 1, "R1": 2, "G": 3, "PL": 4, "T": 5}   # T: an image-to-image step
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)   # a rank stuck this long fails instead of hanging


@dataclass(frozen=True)
class Ranks:
    rank: int = 0         # this process in the job, 0 .. world - 1
    world: int = 1        # processes in the job
    local_rank: int = 0   # this process on its machine (its GPU index)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def ranks_from_environment() -> Ranks:
    """The ranks torchrun announces in the environment; one process when it is absent."""
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def start(device_request: str) -> tuple[Ranks, torch.device | None]:
    """Join the process group torchrun set up (if any). Returns the ranks and, for several
    processes, this process's device (cuda:LOCAL_RANK with NCCL, or cpu with gloo); None leaves
    the device to the usual picker."""
    ranks = ranks_from_environment()
    if not ranks.active:
        return ranks, None
    use_cuda = device_request in ("auto", "cuda") and torch.cuda.is_available()
    if device_request.startswith("cuda") and not use_cuda:
        raise ValueError(f"--device {device_request}: no CUDA device here")
    if device_request == "mps":
        raise ValueError("--device mps: several processes train on CUDA GPUs (NCCL) or CPUs (gloo), not mps")
    device = torch.device("cuda", ranks.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        if ranks.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {ranks.local_rank} on this machine has no GPU of its own "
                             f"({torch.cuda.device_count()} visible): start at most that many processes per machine")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return ranks, device


FINISH_WAIT = datetime.timedelta(seconds=60)   # how long a rank waits at the end for the others


def finish(ranks: Ranks) -> None:
    """Leave the job together. Ranks end their work at different moments (rank 0 still writes
    the last checkpoint, or receives a gather the others have sent); a rank that tears down
    its gloo connections while a peer is still in a collective can abort the peer with
    SIGABRT ("terminate called without an active exception", seen in CI), so every rank waits
    at a barrier first. A rank that died does not hang the others: the wait is bounded."""
    if not (ranks.active and dist.is_initialized()):
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=FINISH_WAIT)
        else:
            dist.barrier()
    except RuntimeError:
        pass   # a peer is gone or late: leaving is all that is left to do
    dist.destroy_process_group()


def layout(batch: int, batch_gpu: int, world: int) -> tuple[int, int]:
    """(batch_gpu, rounds) for a global batch on `world` processes; ConfigError when it does not split."""
    batch_gpu = batch_gpu or batch // world
    if batch_gpu < 1 or batch % (batch_gpu * world):
        raise ConfigError(f"--batch {batch} does not split into {world} process(es) x rounds of --batch-gpu "
                          f"{batch_gpu or batch // world}: choose a batch that divides by batch_gpu x processes")
    return batch_gpu, batch // (batch_gpu * world)


def share(batch: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This process's contiguous share of a global batch, dealt as BatchSampler deals it."""
    n = batch.shape[0]
    return batch[ranks.rank * n // ranks.world:(ranks.rank + 1) * n // ranks.world]


def micro_batch_seed(seed: int, phase: str, counter: int, index: int) -> int:
    """The seed of one micro-batch: phase D/R1/G/PL, its step counter, its index in the global batch."""
    state = np.random.SeedSequence([seed, PHASES[phase], counter, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def wrap(module: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DDP around `module` on several processes, the module itself on one. Buffers are not
    broadcast from rank 0 on every forward: the loop averages them once per step instead."""
    if not ranks.active:
        return module
    ddp = nn.parallel.DistributedDataParallel
    # newer torch renames the option; both spellings mean: no buffer broadcast before each forward
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                      else {"broadcast_buffers": False})
    return ddp(module, device_ids=[device.index] if device.type == "cuda" else None, **no_buffer_sync)


def sync_unless_accumulating(module: nn.Module, last_round: bool):
    """All-reduce gradients only on the last round: earlier rounds accumulate locally (DDP no_sync)."""
    if isinstance(module, nn.parallel.DistributedDataParallel) and not last_round:
        return module.no_sync()
    return contextlib.nullcontext()


def average_(ranks: Ranks, tensors: list[torch.Tensor]) -> None:
    """Replace each floating tensor by its mean over ranks, in place, in one all-reduce."""
    tensors = [t for t in tensors if t.is_floating_point() and t.numel()]
    if not ranks.active or not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= ranks.world
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.reshape(t.shape))


def mean_values(ranks: Ranks, values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean over ranks of scalar statistics with the same keys on every rank."""
    if not ranks.active or not values:
        return values
    keys = sorted(values)
    vec = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(vec)
    return dict(zip(keys, (vec / ranks.world).tolist()))


def any_rank(ranks: Ranks, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (a stop request, a failure)."""
    if not ranks.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def from_main(ranks: Ranks, make):
    """Rank 0 calls make() and every rank gets its result (plain data and CPU tensors), so only
    rank 0 needs to read the run directory (multi-node runs may keep it on rank 0's disk)."""
    if not ranks.active:
        return make()
    box = [make() if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class SilentWriter:
    """Stands in for the run log on ranks other than 0, which write nothing."""

    def __init__(self, elapsed: float = 0.0):
        self._start = time.time() - elapsed

    def write(self, *args, **fields) -> dict:
        return {}

    def elapsed(self) -> float:
        return time.time() - self._start

    def close(self) -> None:
        pass
