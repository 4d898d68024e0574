"""The device picker and the default CPU thread count (issue 22: torch's default of one thread per
core trained 4-50x slower than 1 thread on a 2-core machine with another busy process)."""
import os

import pytest
import torch

from trainer.device import available_devices, choose_threads, pick_device, usable_cores


def test_auto_picks_the_first_available_device_and_cpu_is_always_there():
    assert pick_device("auto") == available_devices()[0]
    assert available_devices()[-1] == "cpu"
    with pytest.raises(ValueError, match="available: .*cpu"):
        pick_device("tpu")


def test_a_requested_count_is_used_as_given():
    assert choose_threads(3, "train", cores=2, load=9.0) == (3, "3 threads (asked for)")
    assert choose_threads(1, "render", cores=64, load=0.0) == (1, "1 thread (asked for)")


@pytest.mark.parametrize("load", [0.0, 1.0, 8.0])
def test_two_cores_get_one_thread_whatever_the_load(load):
    threads, reason = choose_threads(0, "train", cores=2, load=load, processes=1)
    assert threads == 1
    assert reason.startswith("1 thread (2 cores: measured safest for training")


def test_many_cores_get_half_the_free_ones():
    assert choose_threads(0, "train", cores=16, load=0.2, processes=1)[0] == 8
    assert choose_threads(0, "render", cores=16, load=12.0, processes=1)[0] == 4
    assert choose_threads(0, "train", cores=16, load=40.0, processes=1)[0] == 1
    threads, reason = choose_threads(0, "metrics", cores=4, load=0.0, processes=1)
    assert (threads, reason) == (2, "2 threads (4 cores, load 0.0: half the free cores for metrics, so other "
                                    "work does not stall them)")


def test_processes_of_one_job_split_the_cores():
    assert choose_threads(0, "train", cores=16, load=0.0, processes=4)[0] == 2
    threads, reason = choose_threads(0, "train", cores=4, load=0.0, processes=2)
    assert threads == 1 and "4 cores shared by 2 processes" in reason


def test_torchrun_local_world_size_counts_as_processes(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")   # what torchrun sets in each rank's environment
    assert choose_threads(0, "train", cores=16, load=0.0)[0] == 1


def test_unknown_purpose_and_negative_counts_are_refused():
    with pytest.raises(ValueError, match="purpose 'training' is not one of train, render"):
        choose_threads(0, "training", cores=2, load=0.0)
    with pytest.raises(ValueError, match="threads -1"):
        choose_threads(-1, "train", cores=2, load=0.0)


def test_the_machine_defaults_give_a_count_this_process_can_use():
    threads, reason = choose_threads(0, "train")
    assert 1 <= threads <= len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)   # what the run loop does with it
        assert torch.get_num_threads() == threads and reason.startswith(f"{threads} thread")
    finally:
        torch.set_num_threads(before)


def test_usable_cores_follow_a_cgroup_quota(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    affinity = len(os.sched_getaffinity(0))
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")   # half a CPU still runs one thread
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 8) * 100000} 100000\n")   # a quota above the affinity mask
    assert usable_cores(cpu_max) == affinity
    assert usable_cores(tmp_path / "missing") == affinity
