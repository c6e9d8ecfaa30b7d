"""Process memory as chapter 06 measures it: pages shared by two processes count in each one's
RSS, in neither one's USS, and half in each one's PSS."""

import mmap
import os
import subprocess
import sys

import psutil
import pytest

from llmlab.local.profiling import mapped_file_bytes, process_memory

MIB = 2**20
SHARED_MIB = 64

#: Fills 64 MiB, then forks: parent and child share those pages until one writes to them.
TWO_PROCESSES_SHARING_PAGES = f"""
import os, sys, time
block = bytearray(b"x" * ({SHARED_MIB} * {MIB}))
child = os.fork()
if child:
    print(os.getpid(), child, flush=True)
time.sleep(120)
"""


@pytest.fixture
def sharing_pair():
    owner = subprocess.Popen([sys.executable, "-c", TWO_PROCESSES_SHARING_PAGES],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        yield [int(pid) for pid in owner.stdout.readline().split()]
    finally:
        for process in psutil.Process(owner.pid).children():
            process.kill()
        owner.kill()
        owner.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is Linux's")
def test_shared_pages_count_in_rss_not_in_uss_and_split_in_pss(sharing_pair):
    parent, child = (process_memory(pid) for pid in sharing_pair)
    for one in (parent, child):
        assert one.rss_bytes > SHARED_MIB * MIB
        assert one.uss_bytes < one.rss_bytes - 0.75 * SHARED_MIB * MIB
        assert one.uss_bytes < one.pss_bytes < one.rss_bytes
    together_rss = parent.rss_bytes + child.rss_bytes
    together_pss = parent.pss_bytes + child.pss_bytes
    # Added up, RSS counts the shared block twice and PSS once.
    assert together_rss - together_pss > 0.75 * SHARED_MIB * MIB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory maps, as Linux has them")
def test_the_pages_of_a_mapped_file_are_counted_by_its_name(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"w" * (8 * MIB))
    with weights.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert sum(m[i] for i in range(0, len(m), 4096)) > 0  # touch every page
        assert mapped_file_bytes(os.getpid(), ".safetensors") >= 8 * MIB
        assert mapped_file_bytes(os.getpid(), ".gguf") == 0
