"""Process memory as chapter 06 measures it: pages shared by two processes count in each one's
RSS, in neither one's USS, and half in each one's PSS."""

import subprocess
import sys

import psutil
import pytest

from llmlab.local.profiling import process_memory

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
