"""Measure what a block of code costs in memory, as the operating system sees it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil


@dataclass
class PeakMemory:
    """Resident memory of this process before a block, and the most it reached during it."""

    baseline_bytes: int
    peak_bytes: int = 0

    @property
    def growth_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)


@contextmanager
def peak_memory(interval_s: float = 0.005, *, device: str = "cpu") -> Iterator[PeakMemory]:
    """The memory a block of code takes where its tensors live (``device``).

    On the CPU: this process's resident set size, sampled every ``interval_s`` (sampling, not
    ``tracemalloc``, because PyTorch allocates outside Python's allocator); memory freed by
    PyTorch may stay with the process, so measure smaller workloads first. On a CUDA GPU: what
    PyTorch allocates there (``torch.cuda.max_memory_allocated``), since a model on a GPU adds
    next to nothing to the host's memory.
    """
    if device == "cuda":
        with _peak_gpu_memory() as result:
            yield result
        return
    process = psutil.Process()
    result = PeakMemory(baseline_bytes=process.memory_info().rss)
    result.peak_bytes = result.baseline_bytes
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            result.peak_bytes = max(result.peak_bytes, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result.peak_bytes = max(result.peak_bytes, process.memory_info().rss)


@contextmanager
def _peak_gpu_memory() -> Iterator[PeakMemory]:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result = PeakMemory(baseline_bytes=torch.cuda.memory_allocated())
    try:
        yield result
    finally:
        torch.cuda.synchronize()
        result.peak_bytes = torch.cuda.max_memory_allocated()


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory, three ways, because they add up differently across processes.

    RSS counts every page the process maps, shared or not: the RSS of processes that share
    libraries adds up to more than they use together. USS is what only this process holds (what
    its exit would free). PSS gives each process its share of every shared page, so PSS adds up
    across processes to what they take together. PSS is Linux's; elsewhere it is ``None``.
    """

    pid: int
    rss_bytes: int
    uss_bytes: int
    pss_bytes: int | None


def process_memory(pid: int) -> ProcessMemory:
    """``pid``'s RSS, USS and PSS (reading them walks its page tables: milliseconds)."""
    info = psutil.Process(pid).memory_full_info()
    return ProcessMemory(pid, info.rss, info.uss, getattr(info, "pss", None))


def mapped_file_bytes(pid: int, suffix: str = ".safetensors") -> int:
    """How much of ``pid``'s RSS is pages of files it maps whose names end with ``suffix``.

    Transformers maps a safetensors file into memory and, when the model runs in the file's
    dtype, uses its pages as the weights: the kernel then keeps one copy of them for every
    process that maps the file. (Linux, Windows and FreeBSD; psutil has no maps on macOS.)
    """
    maps = psutil.Process(pid).memory_maps(grouped=True)
    return sum(m.rss for m in maps if m.path.endswith(suffix))
