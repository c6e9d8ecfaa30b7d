"""``transformers serve --continuous-batching`` on the course's model, as chapter 06 starts it:
the answer length forced, streamed, read by the course's benchmark timing loop."""

from __future__ import annotations

import asyncio

import pytest

from llmlab.bench.timeline import Arrival, arrivals_timeline
from llmlab.servers.transformers_serve import FORCED_LENGTH, transformers_server

pytestmark = pytest.mark.server


def test_it_streams_answers_of_the_length_asked_to_requests_at_chosen_moments():
    arrivals = [Arrival(0, 12), Arrival(0, 5), Arrival(0.2, 7)]
    with transformers_server() as server:
        timeline = asyncio.run(
            arrivals_timeline(server.url("/v1"), server.model, arrivals, **FORCED_LENGTH)
        )
    assert list(timeline["tokens"]) == [12, 5, 7]
    assert (timeline["sent"] <= timeline["first token"]).all()
    assert (timeline["first token"] <= timeline["done"]).all()
