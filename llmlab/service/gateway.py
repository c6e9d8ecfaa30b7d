"""The service as a gateway: the same API in front of vLLM or llama-server.

In production the model usually runs in an inference server that batches better than anything
written by hand, and a thin service in front of it owns what is the business's: API keys,
limits, validation, metrics, the endpoints clients use. ``BackendEngine`` has the in-process
``Engine``'s interface, so the app does not change: the chat template is applied here, with the
model's own tokenizer (no weights are loaded), the prompt-length limit is checked on real
tokens, and the token ids go to the backend's OpenAI-compatible ``/v1/completions`` as a
stream. A request whose client leaves closes its backend stream, and vLLM and llama-server
stop generating for it.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from transformers import AutoTokenizer

from llmlab.http.common import LIMITS, bearer, error_message, stream_headers
from llmlab.http.streaming import StreamError, asse_json
from llmlab.local.sampling import SamplingParams, Usage, encode_prompt
from llmlab.messages import Message
from llmlab.models import resolve_model
from llmlab.service.engine import Finished, QueueFullError, Request, TextDelta


class BackendEngine:
    """Relays requests to an OpenAI-compatible server (``base_url`` ends in ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        tokenizer_model: str | None = None,
        api_key: str | None = None,
        max_in_flight: int = 64,
        timeout_s: float = 600,
    ) -> None:
        self.model = model
        self.max_in_flight = max_in_flight
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer_model))
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=bearer(api_key), timeout=timeout_s, limits=LIMITS
        )
        self._in_flight = 0

    def encode(self, prompt: str | list[Message]) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    @property
    def queue_depth(self) -> int:
        return 0  # the backend keeps the queue; its own /metrics shows it

    @property
    def running(self) -> int:
        return self._in_flight

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Request:
        """Start relaying; raises ``QueueFullError`` past ``max_in_flight`` requests."""
        if self._in_flight >= self.max_in_flight:
            raise QueueFullError
        loop = asyncio.get_running_loop()
        request = Request(prompt_ids, params, loop)
        self._in_flight += 1
        relay = loop.create_task(self._relay(request))
        request.on_cancel = relay.cancel
        return request

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _relay(self, request: Request) -> None:
        params = request.params
        body = {
            "model": self.model,
            "prompt": request.prompt_ids,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "ignore_eos": params.ignore_eos,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            body["seed"] = params.seed
        usage, finish_reason = Usage(len(request.prompt_ids), 0), "stop"
        request.sent_at = time.monotonic()
        try:
            async with self._http.stream(
                "POST", "/completions", json=body, headers=stream_headers()
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise httpx.HTTPError(f"{response.status_code} {error_message(response)}")
                async for chunk in asse_json(response):
                    for choice in chunk.get("choices") or []:
                        if choice.get("text"):
                            request.publish_here(TextDelta(choice["text"]))
                        finish_reason = choice.get("finish_reason") or finish_reason
                    if chunk.get("usage"):
                        counts = chunk["usage"]
                        usage = Usage(counts["prompt_tokens"], counts["completion_tokens"])
            request.publish_here(Finished(usage, "length" if finish_reason == "length" else "stop"))
        except (httpx.HTTPError, StreamError) as error:
            request.publish_here(Finished(usage, "stop", error=f"the backend failed: {error}"))
        finally:
            self._in_flight -= 1
