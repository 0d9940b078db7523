"""ORT's threads and spinning follow the CPU share: affinity, a cgroup v1/v2 quota, Lambda's memory-based share."""

from __future__ import annotations

import os

import pytest

from handler import model
from handler.model import CpuShare, cgroup_quota, cpu_share


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("116000 100000\n")
    assert cgroup_quota(tmp_path) == pytest.approx(1.16)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None


@pytest.mark.parametrize("controller", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, controller):
    v1 = tmp_path / controller
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == pytest.approx(1.0)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert cgroup_quota(tmp_path) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_quota(tmp_path) is None


@pytest.mark.parametrize(
    ("cores", "share", "threads", "spinning"),
    [
        (2, 2.0, 2, True),  # whole, unthrottled cores
        (2, 1.7, 2, False),  # Lambda 3008 MB: two threads, but no busy-waiting on a throttled share
        (2, 1.16, 1, False),  # Lambda 2048 MB
        (2, 1.0, 1, False),  # Lambda 1769 MB / docker --cpus 1
        (2, 0.3, 1, False),
        (1, 1.0, 1, False),  # one thread never spins: there is no other thread to wait for
        (8, 3.0, 3, False),
    ],
)
def test_threads_and_spinning_from_the_share(cores, share, threads, spinning):
    assert CpuShare(cores, share).threads == threads
    assert CpuShare(cores, share).spinning is spinning


@pytest.mark.parametrize(("memory_mb", "threads"), [("1024", 1), ("2048", 1), ("3008", 2), ("10240", 2)])
def test_lambda_memory_size_caps_the_share(monkeypatch, memory_mb, threads):
    monkeypatch.setattr(model, "cgroup_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb)
    share = cpu_share()
    assert share.cores == 2 and share.threads == threads
    assert share.share == pytest.approx(min(2.0, int(memory_mb) / model.LAMBDA_MB_PER_VCPU))


def test_a_quota_below_the_memory_share_wins(monkeypatch):
    monkeypatch.setattr(model, "cgroup_quota", lambda: 1.16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    assert cpu_share() == CpuShare(cores=2, share=pytest.approx(1.16))
    assert cpu_share().threads == 1
