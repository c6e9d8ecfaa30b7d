"""Does the routing policy let replicas reuse their prompt caches? Measured, not assumed.

A replica that has just computed a prompt keeps its KV cache; the next request that starts with
the same text (the same long system prompt) skips that part of the prefill. Round-robin sends
the requests of one system prompt to every replica in turn, so with R replicas each prompt is
computed up to R times; a policy with affinity sends them all to one replica, so each prompt is
computed once.

The experiment is built so that this is the only difference: requests go one at a time, and each
replica has a slot per system prompt (``parallel`` = ``prompts``), so a replica never evicts a
prompt it holds, whichever replicas the hash picks. llama-server's RAM prompt cache is off
(``--cache-ram 0``): it would otherwise keep up to 8 GiB of prompts, as a GPU's large cache
does, until the number of distinct prompts outgrows it (then round-robin also evicts, and
affinity gains more).

Which policy gives affinity in front of llama-server: ``consistent_hash``. Every request carries
``X-Session-ID`` naming its system prompt, and the router hashes it to a replica. vllm-router
0.1.17's ``cache_aware`` matches prefixes of token ids, which it asks each worker for (``POST
/v1/chat/completions/render``, then ``POST /tokenize`` with the messages: vLLM's API).
llama-server has neither, so the router counts ``missing_tokens`` and routes by load alone:
measure it in front of vLLM replicas, not here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmlab.bench import RequestRecord, Stats
from llmlab.messages import Message
from llmlab.prompts import QUESTIONS, SYSTEM_PROMPT
from llmlab.scaleout.load import ask_all
from llmlab.scaleout.replicas import replicas
from llmlab.scaleout.router import SESSION_HEADER, vllm_router

#: The businesses whose assistants get one long system prompt each.
BUSINESSES = ("a bakery", "a bicycle shop", "a public library", "a train station",
              "a dental practice", "a garden centre")  # fmt: skip


def system_prompt(business: str, rules: int = 12) -> str:
    """A long system prompt (about 35 tokens a rule), different from its first sentence on."""
    lines = [f"{SYSTEM_PROMPT} You answer the customers of {business}."]
    lines += [
        f"Rule {i}: when a customer of {business} asks about item number {i}, answer politely "
        f"and briefly, and mention the opening hours of {business}."
        for i in range(1, rules + 1)
    ]
    return " ".join(lines)


def prefix_workload(
    prompts: int = 4, questions: int = 4, *, rules: int = 6, seed: int = 0
) -> list[list[Message]]:
    """``prompts`` system prompts, each with ``questions`` different user questions, shuffled
    (seeded) as users would send them."""
    if not 1 <= prompts <= len(BUSINESSES):
        raise ValueError(f"prompts must be between 1 and {len(BUSINESSES)}, not {prompts}")
    chats = [
        [{"role": "system", "content": system_prompt(business, rules)},
         {"role": "user", "content": QUESTIONS[q % len(QUESTIONS)]}]
        for business in BUSINESSES[:prompts]
        for q in range(questions)
    ]  # fmt: skip
    random.Random(seed).shuffle(chats)
    return chats


@dataclass(frozen=True)
class CacheResult:
    """One policy's run: how much of the prompts came from the replicas' caches, and the time
    to first token (in ms, at the harness's percentiles: ``llmlab.bench.Stats``)."""

    policy: str
    requests: int
    failed: int
    #: Requests that computed their system prompt: less than half of their prompt was cached.
    prefills: int
    prompt_tokens: int
    cached_tokens: int
    ttft_p50_ms: float
    ttft_p90_ms: float
    duration_s: float
    #: Requests the router sent again to another replica (``vllm_router_retries_total``): each
    #: one lands where the policy did not choose, so the prefill count is exact only at 0.
    retries: int = 0

    @property
    def hit_ratio(self) -> float:
        """Cached prompt tokens / prompt tokens."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def row(self) -> dict[str, Any]:
        """The result as one table row (``pandas.DataFrame([r.row() for r in results])``)."""
        return asdict(self) | {"hit_ratio": round(self.hit_ratio, 3)}


def summarize_cache(
    policy: str, records: Sequence[RequestRecord], duration_s: float, retries: int = 0
) -> CacheResult:
    """Add up the requests of one run."""
    done = [r for r in records if r.failure is None]
    ttft = Stats.of([1000 * r.ttft_s for r in done])
    return CacheResult(
        policy=policy,
        requests=len(records),
        failed=len(records) - len(done),
        prefills=sum((r.cached_tokens or 0) < (r.prompt_tokens or 0) / 2 for r in done),
        prompt_tokens=sum(r.prompt_tokens or 0 for r in done),
        cached_tokens=sum(r.cached_tokens or 0 for r in done),
        ttft_p50_ms=round(ttft.p50, 1),
        ttft_p90_ms=round(ttft.p90, 1),
        duration_s=round(duration_s, 2),
        retries=retries,
    )


async def prefix_cache_experiment(
    policies: Sequence[str] = ("round_robin", "consistent_hash"),
    *,
    n_replicas: int = 2,
    prompts: int = 4,
    questions: int = 4,
    rules: int = 6,
    max_tokens: int = 8,
    **kwargs: Any,
) -> list[CacheResult]:
    """Run the same workload (``prefix_workload``) through a router with each policy, each on
    fresh replicas (empty caches), one request at a time (``kwargs``: more ``llama_server``
    keywords).

    Every request carries ``X-Session-ID`` naming its system prompt. Each replica has a slot per
    prompt, so it keeps every prompt it has computed: round-robin computes each prompt once per
    replica that gets it, affinity once in all.
    """
    for fixed in ("parallel", "concurrency"):
        if fixed in kwargs:
            raise ValueError(
                f"prefix_cache_experiment sets {fixed} itself (a slot per system prompt, one "
                "request at a time), so that routing is the only difference between policies"
            )
    chats = prefix_workload(prompts, questions, rules=rules)

    systems = list(dict.fromkeys(chat[0]["content"] for chat in chats))

    def prompt_id(i: int) -> dict[str, str]:  # the same for every policy: only the router differs
        return {SESSION_HEADER: f"prompt-{systems.index(chats[i][0]['content'])}"}

    extra = [*kwargs.pop("extra_args", ()), "--cache-ram", "0"]
    results = []
    for policy in policies:
        with replicas(n_replicas, parallel=prompts, extra_args=extra, **kwargs) as servers:
            router = vllm_router([s.base_url for s in servers], policy=policy)
            with router:
                started = time.perf_counter()
                records = await ask_all(
                    router, chats, concurrency=1, max_tokens=max_tokens, headers=prompt_id
                )
                duration_s = time.perf_counter() - started
                results.append(summarize_cache(policy, records, duration_s, router.retries()))
    return results
