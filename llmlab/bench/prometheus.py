"""Read a server's own counters, to check the client's figures against the server's.

vLLM counts the tokens it generated in ``vllm:generation_tokens_total``, llama-server (with
``--metrics``) in ``llamacpp:tokens_predicted_total``. Read the counter before and after a run:
the difference is what the server says it did, next to what the benchmark counted.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmlab.http.common import bearer

VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"
LLAMACPP_PREDICTED_TOKENS = "llamacpp:tokens_predicted_total"


def read_counter(
    server_url: str,
    name: str = VLLM_GENERATION_TOKENS,
    *,
    api_key: str | None = None,
    timeout_s: float = 10,
) -> float:
    """The value of counter ``name`` at ``{server_url}/metrics``, summed over its labels
    (``server_url`` is the server's root, without ``/v1``)."""
    url = server_url.rstrip("/") + "/metrics"
    response = httpx.get(url, headers=bearer(api_key), timeout=timeout_s)
    response.raise_for_status()
    samples = [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    values = [sample.value for sample in samples if sample.name == name]
    if not values:
        names = sorted({sample.name for sample in samples if sample.name.endswith("_total")})
        raise ValueError(f"{url} has no counter {name!r}; its counters: {', '.join(names)}")
    return sum(values)
