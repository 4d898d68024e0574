"""The one device picker: the trainer, the metrics and the studio all choose devices here, and the
number of CPU threads torch uses on them."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

PURPOSES = {"train": "training", "render": "rendering", "invert": "inversion", "metrics": "metrics"}
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")   # cgroup v2 quota: "max 100000" or "200000 100000"


def available_devices() -> list[str]:
    """Devices this machine can run on, best first: cuda, mps, cpu."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def pick_device(requested: str = "auto") -> str:
    """"auto" -> the best available device; anything else is checked and returned.
    Raises ValueError naming the devices there are when the request is not one of them."""
    requested = str(requested)
    devices = available_devices()
    if requested == "auto":
        return devices[0]
    if requested.split(":")[0] not in devices:
        raise ValueError(f"device {requested!r} is not available here (available: {', '.join(devices)})")
    return requested


def select_device(requested: str = "auto") -> torch.device:
    """pick_device as a torch.device."""
    return torch.device(pick_device(requested))



def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: its affinity mask (os.cpu_count() also counts CPUs a taskset or
    cpuset forbids), lowered to a container's cgroup CPU quota when there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def choose_threads(requested: int,                 # --threads: > 0 is used as given, 0 asks for the default
                   purpose: str,                   # one of PURPOSES; named in the reason
                   cores: int | None = None,       # usable CPUs (None: usable_cores())
                   load: float | None = None,      # runnable processes, 1-minute average (None: os.getloadavg)
                   processes: int | None = None,   # processes of this job on the machine (None: torchrun's
                                                   # LOCAL_WORLD_SIZE, else 1)
                   ) -> tuple[int, str]:
    """The CPU thread count for torch.set_num_threads and a short reason to print beside it.

    torch's default is one thread per core. Its OpenMP workers (GNU libgomp) spin while they wait for
    each other, so when another process holds a core each small operation waits for a descheduled
    worker. Measured on 2 cores (benchmarks/results/threads.md): beside any busy process the default
    trained Pix2Pix, CycleGAN, DCGAN, StyleGAN2 and the toy GAN and rendered the demo 4-50x slower
    than 1 thread; on the idle machine it was 1.2-1.7x faster. The spin is fixed when torch is
    imported (OMP_WAIT_POLICY, GOMP_SPINCOUNT), so nothing here can soften it. On 2 cores the default
    is therefore 1 thread; on more, half of the cores that are neither busy nor another process of
    this job's, so other work leaves the workers room (a rule, not measured beyond 2 cores)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    if requested < 0:
        raise ValueError(f"threads {requested}: give a positive count, or 0 for the default")
    if requested > 0:
        return requested, f"{requested} thread{'s' * (requested > 1)} (asked for)"
    cores = usable_cores() if cores is None else cores
    processes = processes or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    share = max(1, cores // processes)
    if share <= 2:
        return 1, (f"1 thread ({_cores_text(cores, processes)}: measured safest for {PURPOSES[purpose]}; 2 were "
                   f"up to 1.7x faster idle, 4-50x slower beside another busy process)")
    load = os.getloadavg()[0] if load is None else load
    free = max(1, (cores - round(load)) // processes)
    threads = max(1, min(share // 2, free))
    return threads, (f"{threads} thread{'s' * (threads > 1)} ({_cores_text(cores, processes)}, load "
                     f"{load:.1f}: half the free cores for {PURPOSES[purpose]}, so other work does not stall them)")


def _cores_text(cores: int, processes: int) -> str:
    return f"{cores} cores" + (f" shared by {processes} processes" if processes > 1 else "")
