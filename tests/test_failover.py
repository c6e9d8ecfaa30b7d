"""Kill one of two real llama-server replicas under load: the router must lose no request that
had not started streaming, stop sending to the dead one, and use it again once restarted."""

import asyncio

import pytest

from llmlab.scaleout import FailoverReport, failover_experiment, replicas, vllm_router

pytestmark = pytest.mark.server

CONCURRENCY = 4


@pytest.fixture(scope="module")
def servers():
    with replicas(2, parallel=2) as servers:
        yield servers


@pytest.fixture(scope="module")
def router(servers):
    with vllm_router([s.base_url for s in servers]) as router:
        yield router


@pytest.mark.parametrize("stream", [True, False])
def test_a_killed_replica_loses_only_streams_in_progress(router, servers, stream):
    report = asyncio.run(
        failover_experiment(router, servers, kill_after_s=2, stream=stream,
                            concurrency=CONCURRENCY)
    )  # fmt: skip
    assert report.failed_before_first_byte == 0, report.errors
    assert report.answered + report.failed_mid_stream == report.sent
    assert report.failed_mid_stream <= (CONCURRENCY if stream else 0)
    assert report.answered >= CONCURRENCY
    # What the router did, read from the router (how fast depends on the machine's load):
    assert report.marked_unhealthy_s is not None, "the router never marked the replica down"
    assert report.healthy_again_s is not None, "the router never took the replica back"
    assert 0 < report.restart_s < report.traffic_again_s
    assert servers[0].running
    assert all(router.workers().values())
    assert set(report.row()) == set(FailoverReport.__dataclass_fields__) - {"errors"}
