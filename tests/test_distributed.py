"""Training on several processes: 2 gloo processes on CPU against one process fed the union of
their batches. The global batch is [processes, rounds, batch_gpu]; one process with two rounds of
batch_gpu images sees the same micro-batches (data, latents, noise, augmentations) as two
processes with one round each, so after a few steps the weights must agree to float tolerance.
They would not if DDP did not average the gradients: each rank would then follow its own half."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from trainer.config import RunConfig

STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tiny, preset: str, batch_gpu: int, batch: int = 8) -> RunConfig:
    regularisers = {"r1_gamma": 1.0, "r1_every": 2}
    if preset == "stylegan2":
        regularisers.update(pl_weight=2.0, pl_every=2, style_mixing=0.9)
    return tiny(preset, data={"xflip": True, "max_images": 64},
                train={"batch": batch, "batch_gpu": batch_gpu, "threads": 1, "augment": "color,translation",
                       "ema_kimg": 0.01, "ema_rampup": 0.0, **regularisers})


def train_steps(cfg_json: str, run_dir: str, out: str) -> None:
    """Build a Trainer here (one rank of a job, or the whole job), take STEPS steps, save weights."""
    from trainer.loop import Trainer
    trainer = Trainer(RunConfig.from_json(cfg_json), run_dir, progress=False, log=lambda *_: None)
    for _ in range(STEPS):
        trainer.train_step()
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.G_ema.state_dict(),
                "pl_mean": trainer.pl_mean, "nimg": trainer.nimg}, out)


def rank_main(rank: int, world: int, port: int, cfg_json: str, run_dir: str, out_pattern: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        train_steps(cfg_json, run_dir, out_pattern.format(rank=rank))
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(world: int, cfg: RunConfig, run_dir, out_pattern: str, timeout: float = 240) -> None:
    """Spawn `world` processes and wait; a hang fails the test instead of blocking it."""
    context = mp.start_processes(rank_main, args=(world, free_port(), cfg.to_json(), str(run_dir), out_pattern),
                                 nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"{world} ranks did not finish within {timeout} s")


def max_difference(a: dict, b: dict, skip=("running_", "num_batches")) -> float:
    """Largest |a - b| over parameters and buffers (batch-norm running statistics skipped: each
    rank tracks its own micro-batches and they are averaged, not chained, across ranks)."""
    worst = 0.0
    for net in ("G", "D", "G_ema"):
        for key, value in a[net].items():
            if any(s in key for s in skip):
                continue
            worst = max(worst, (value.float() - b[net][key].float()).abs().max().item())
    return worst


@pytest.mark.parametrize("preset", ["dcgan", "stylegan2"])
def test_two_ranks_match_one_process_fed_the_union(preset, tiny, tmp_path):
    threads = torch.get_num_threads()
    try:
        train_steps(config(tiny, preset, batch_gpu=4).to_json(), str(tmp_path / "one"), str(tmp_path / "one.pt"))
        train_steps(config(tiny, preset, batch_gpu=4, batch=4).to_json(), str(tmp_path / "half"),
                    str(tmp_path / "half.pt"))
    finally:
        torch.set_num_threads(threads)
    run_ranks(2, config(tiny, preset, batch_gpu=0), tmp_path / "two", str(tmp_path / "rank{rank}.pt"))
    one, half = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "half"))
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["nimg"] == one["nimg"] == STEPS * 8
    assert max_difference(rank0, rank1) == 0.0, "ranks drifted apart: gradients or EMA not identical"
    agreement = max_difference(rank0, one)
    assert agreement < 1e-4, f"2 ranks differ from one process fed both halves by {agreement:.3g}"
    # Control: with rank 1's half left out the weights move elsewhere, so a rank that trained
    # on its own half (gradients not averaged) could not pass the check above.
    assert max_difference(rank0, half) > 100 * max(agreement, 1e-6)
    if preset == "stylegan2":
        assert torch.allclose(rank0["pl_mean"], one["pl_mean"], atol=1e-5)
        assert rank0["G"]["mapping.w_avg"].abs().sum() > 0
        assert torch.allclose(rank0["G"]["mapping.w_avg"], one["G"]["mapping.w_avg"], atol=1e-5)
    # only rank 0 wrote into the run directory
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoints", "config.json", "samples", "state"]


def _feature_setup():
    """A tiny generator and a small fixed feature network (the sharding, not Inception, is under test)."""
    from trainer.models.stylegan2 import StyleGAN2Generator
    torch.manual_seed(0)
    G = StyleGAN2Generator(8, 0, 8, 8, 1, width=4, max_width=4, mapping_layers=1).eval()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return G, lambda images: net(images.float() / 127.5 - 1)


def features_rank_main(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import numpy as np
    import torch.distributed as dist
    from trainer.distributed import ranks_from_environment
    from trainer.metrics.sharded import sharded_generator_features
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        G, net = _feature_setup()
        feats = sharded_generator_features(net, G, 10, 4, "cpu", ranks_from_environment(), seed=3)
        if rank == 0:
            np.save(out, feats)
        else:
            assert feats is None
    finally:
        dist.destroy_process_group()


def test_metric_features_shared_by_two_ranks_equal_one_process(tmp_path):
    import numpy as np
    from trainer.metrics.features import extract_features, generator_source
    G, net = _feature_setup()
    alone = extract_features(net, generator_source(G, 10, "cpu", seed=3), 4, "cpu", progress=False)
    context = mp.start_processes(features_rank_main, args=(2, free_port(), str(tmp_path / "f.npy")), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("ranks did not finish")
    shared = np.load(tmp_path / "f.npy")
    assert shared.shape == alone.shape == (10, 6)
    np.testing.assert_allclose(shared, alone, atol=1e-6)
