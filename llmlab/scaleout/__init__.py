"""Chapter 08, scaling out: several replicas of a model server behind vLLM's router.

>>> with replicas(2, parallel=2) as servers:
...     with vllm_router([s.base_url for s in servers], policy="round_robin") as router:
...         await requests_per_replica(router, servers, 16)      # [8, 8]
...         report = await failover_experiment(router, servers)  # kill one, restart it
>>> results = await prefix_cache_experiment()  # round_robin, consistent_hash
>>> pandas.DataFrame([report.row()]), pandas.DataFrame([r.row() for r in results])
"""

from llmlab.scaleout.failover import FailoverReport, failover_experiment
from llmlab.scaleout.load import ask_all, chat_target, requests_per_replica
from llmlab.scaleout.prefix_cache import (
    CacheResult,
    prefix_cache_experiment,
    prefix_workload,
    system_prompt,
)
from llmlab.scaleout.replicas import Work, kill, replica_work, replicas
from llmlab.scaleout.router import POLICIES, SESSION_HEADER, Router, vllm_router

__all__ = [
    "POLICIES",
    "SESSION_HEADER",
    "CacheResult",
    "FailoverReport",
    "Router",
    "Work",
    "ask_all",
    "chat_target",
    "failover_experiment",
    "kill",
    "prefix_cache_experiment",
    "prefix_workload",
    "replica_work",
    "replicas",
    "requests_per_replica",
    "system_prompt",
    "vllm_router",
]
