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

STEPS = 2   # R1 comes on the 2nd D step, path length on the 1st G step


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
    from trainer.training.loop import Trainer
    trainer = Trainer(RunConfig.from_json(cfg_json), run_dir, progress=False, log=lambda *_: None)
    for _ in range(STEPS):
        trainer.train_step()
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.G_ema.state_dict(),
                "pl_mean": trainer.pl_mean, "nimg": trainer.nimg}, out)


def rank_main(rank: int, world: int, port: int, jobs: list[tuple[str, str, str]], features_out: str) -> None:
    """One rank: the training jobs (config JSON, run dir, output pattern), then the metric features."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from trainer.training.distributed import finish, ranks_from_environment
    try:
        for cfg_json, run_dir, out_pattern in jobs:
            train_steps(cfg_json, run_dir, out_pattern.format(rank=rank))
        sharded_features(features_out)
    finally:
        finish(ranks_from_environment())   # the trainer's own way out: a barrier, then teardown


def run_ranks(world: int, jobs, features_out: str, timeout: float = 240) -> None:
    """Spawn `world` processes and wait; a hang fails the test instead of blocking it."""
    context = mp.start_processes(rank_main, args=(world, free_port(), jobs, features_out), nprocs=world,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"{world} ranks did not finish within {timeout} s")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-rank job for the whole module (spawning is the slow part): dcgan and stylegan2 steps,
    then the shared metric features. -> its folder."""
    from conftest import tiny_config
    root = tmp_path_factory.mktemp("ranks")
    jobs = [(config(tiny_config, preset, batch_gpu=0).to_json(), str(root / preset), str(root / f"{preset}-{{rank}}.pt"))
            for preset in ("dcgan", "stylegan2")]
    run_ranks(2, jobs, str(root / "features.npy"))
    return root


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


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["dcgan", "stylegan2"])
def test_two_ranks_match_one_process_fed_the_union(preset, tiny, tmp_path, two_ranks):
    threads = torch.get_num_threads()
    try:
        train_steps(config(tiny, preset, batch_gpu=4).to_json(), str(tmp_path / "one"), str(tmp_path / "one.pt"))
        train_steps(config(tiny, preset, batch_gpu=4, batch=4).to_json(), str(tmp_path / "half"),
                    str(tmp_path / "half.pt"))
    finally:
        torch.set_num_threads(threads)
    one, half = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "half"))
    rank0, rank1 = (torch.load(two_ranks / f"{preset}-{r}.pt", weights_only=True) for r in (0, 1))
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
    # only rank 0 wrote into the run directory (and took its lock)
    assert sorted(p.name for p in (two_ranks / preset).iterdir()) == [".lock", "checkpoints", "config.json", "samples",
                                                                       "state"]


def _feature_setup():
    """A tiny generator and a small fixed feature network (the sharding, not Inception, is under test)."""
    from trainer.models.stylegan2 import StyleGAN2Generator
    torch.manual_seed(0)
    G = StyleGAN2Generator(8, 0, 8, 8, 1, width=4, max_width=4, mapping_layers=1).eval()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return G, lambda images: net(images.float() / 127.5 - 1)


def sharded_features(out: str) -> None:
    """Rank r's part of the shared feature extraction; rank 0 saves the gathered result."""
    import numpy as np
    import torch.distributed as dist
    from trainer.training.distributed import ranks_from_environment
    from trainer.metrics.sharded import sharded_generator_features
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    ranks = ranks_from_environment()
    G, net = _feature_setup()
    feats = sharded_generator_features(net, G, 10, 4, "cpu", ranks, seed=3)   # batches of 4, 4, 2
    if ranks.is_main:
        np.save(out, feats)
    else:
        assert feats is None


def test_metric_features_shared_by_two_ranks_equal_one_process(two_ranks):
    import numpy as np
    from trainer.metrics.features import extract_features, generator_source
    G, net = _feature_setup()
    alone = extract_features(net, generator_source(G, 10, "cpu", seed=3), 4, "cpu", progress=False)
    shared = np.load(two_ranks / "features.npy")
    assert shared.shape == alone.shape == (10, 6)
    np.testing.assert_allclose(shared, alone, atol=1e-6)
