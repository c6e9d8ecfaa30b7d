"""Run a chat model in process with Transformers: the source chapter's ``LocalLLM``, done right.

What changed from the source chapter, and why:

* the dtype follows the device: float32 on a CPU (float16 there is slow or unsupported),
  bfloat16 on a GPU that has it, float16 on older GPUs and Apple MPS;
* ``chat`` formats messages with the tokenizer's own chat template, never a hand-written one;
* sampling parameters are checked before a minute is spent generating, and temperature 0 means
  greedy decoding (Transformers rejects ``temperature=0`` with sampling on);
* every result carries its token usage and why it stopped;
* streaming yields text as it is produced, and stops the model when the reader stops reading.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, overload

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)
from transformers.utils import logging as hf_logging

from llmlab.errors import ModelNotFoundError
from llmlab.local.sampling import (
    FinishReason,
    GenerationResult,
    SamplingParams,
    StreamChunk,
    Usage,
    encode_prompt,
    sampling_params,
)
from llmlab.messages import Message, validate_messages
from llmlab.models import check_fits_in_memory, resolve_model
from llmlab.sizing.hardware import Device, Hardware, detect_hardware
from llmlab.sizing.memory import GiB


def pick_dtype(hardware: Hardware) -> torch.dtype:
    """The fastest dtype that computes correctly on ``hardware`` (``Hardware.compute_dtype``).

    float16 matrix kernels are slow or missing on most CPUs, so the source chapter's
    ``torch_dtype=torch.float16`` makes CPU inference slower, not faster (measured in chapter 01).
    """
    dtype: torch.dtype = getattr(torch, hardware.compute_dtype)
    return dtype


class _StopWhenSet(StoppingCriteria):
    """Ends generation when a reader abandons a stream, so the model does not run on unread."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: object) -> bool:
        return self.event.is_set()


class LocalLLM:
    """A chat model loaded in this process.

    >>> llm = LocalLLM()  # the offline default, or $LLMLAB_MODEL
    >>> llm.chat([{"role": "user", "content": "Hi"}], temperature=0).text
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: Device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.model_path = resolve_model(model)
        hardware = detect_hardware()
        self.device: Device = device or hardware.device
        self.dtype = dtype or pick_dtype(replace(hardware, device=self.device))
        check_fits_in_memory(
            self.model_path, self.dtype.itemsize, int(hardware.available_memory_gib * GiB)
        )
        try:
            with _quiet_when_local(self.model_path):
                self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
                # On a GPU, straight to it: without a device_map every weight passes through
                # RAM first (a 7B needs 15 GiB of RAM to reach a 16 GiB card).
                placement = {"device_map": self.device} if self.device != "cpu" else {}
                self.model = AutoModelForCausalLM.from_pretrained(
                    self.model_path, dtype=self.dtype, **placement
                )
        except OSError as error:  # what Transformers raises for a model it cannot fetch
            raise ModelNotFoundError(
                f"Could not load {self.model_path!r}: {error}\nWithout access to a model hub, "
                "use a local folder or a .gguf file (see llmlab.models)."
            ) from error
        self.model.to(self.device).eval()

    def __repr__(self) -> str:
        return f"LocalLLM({self.model_path!r}, device={self.device!r}, dtype={self.dtype})"

    def apply_chat_template(self, messages: Sequence[Message]) -> str:
        """The exact text the model sees for ``messages``, ending with the assistant's turn."""
        return self.tokenizer.apply_chat_template(
            validate_messages(messages), tokenize=False, add_generation_prompt=True
        )

    @overload
    def generate(
        self,
        prompt: str,
        params: SamplingParams | None = ...,
        *,
        stream: Literal[False] = ...,
        **overrides: object,
    ) -> GenerationResult: ...
    @overload
    def generate(
        self,
        prompt: str,
        params: SamplingParams | None = ...,
        *,
        stream: Literal[True],
        **overrides: object,
    ) -> Generator[StreamChunk, None, None]: ...
    def generate(
        self,
        prompt: str,
        params: SamplingParams | None = None,
        *,
        stream: bool = False,
        **overrides: object,
    ) -> GenerationResult | Generator[StreamChunk, None, None]:
        """Continue ``prompt`` as plain text (no chat template): a base-model style completion.

        ``overrides`` are ``SamplingParams`` fields, e.g. ``temperature=0``.
        """
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("prompt must be a non-empty string")
        return self._run(self.encode(prompt), sampling_params(params, overrides), stream)

    @overload
    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams | None = ...,
        *,
        stream: Literal[False] = ...,
        **overrides: object,
    ) -> GenerationResult: ...
    @overload
    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams | None = ...,
        *,
        stream: Literal[True],
        **overrides: object,
    ) -> Generator[StreamChunk, None, None]: ...
    def chat(
        self,
        messages: Sequence[Message],
        params: SamplingParams | None = None,
        *,
        stream: bool = False,
        **overrides: object,
    ) -> GenerationResult | Generator[StreamChunk, None, None]:
        """Answer the last message of a chat, formatted by the model's own chat template."""
        messages = validate_messages(messages)  # a bare string here is a mistake, not a prompt
        return self._run(self.encode(messages), sampling_params(params, overrides), stream)

    def encode(self, prompt: str | Sequence[Message]) -> list[int]:
        """Token ids for a plain prompt (as is) or a chat (through the chat template)."""
        return encode_prompt(self.tokenizer, prompt)

    def generate_tokens(
        self, inputs: dict[str, torch.Tensor], params: SamplingParams
    ) -> torch.Tensor:
        """Run ``model.generate`` on a (possibly padded) batch; returns prompt + new ids per row."""
        with torch.inference_mode():
            return self.model.generate(**self.generation_kwargs(inputs, params))

    def result_from_tokens(
        self, prompt_tokens: int, new_tokens: Sequence[int] | torch.Tensor, max_new_tokens: int
    ) -> GenerationResult:
        """Decode what the model wrote, up to and including its first stop token (in a batch,
        rows that stopped early are padded after it)."""
        new_tokens = [int(token) for token in new_tokens]
        stop_ids = self.stop_token_ids
        end = next((i + 1 for i, token in enumerate(new_tokens) if token in stop_ids), None)
        written = new_tokens[:end] if end else new_tokens
        finish: FinishReason = "stop" if end or len(written) < max_new_tokens else "length"
        return GenerationResult(
            text=self.tokenizer.decode(written, skip_special_tokens=True),
            usage=Usage(prompt_tokens, len(written)),
            finish_reason=finish,
        )

    def generation_kwargs(
        self, inputs: dict[str, torch.Tensor], params: SamplingParams
    ) -> dict[str, Any]:
        """Everything ``model.generate`` needs for a (possibly padded) batch under ``params``."""
        if params.seed is not None:
            torch.manual_seed(params.seed)
        inputs = {name: tensor.to(self.device) for name, tensor in inputs.items()}
        return inputs | params.generate_kwargs() | {"pad_token_id": self.pad_token_id}

    def _run(
        self, prompt_ids: list[int], params: SamplingParams, stream: bool
    ) -> GenerationResult | Generator[StreamChunk, None, None]:
        inputs = {"input_ids": torch.tensor([prompt_ids])}
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if stream:
            return self._stream(self.generation_kwargs(inputs, params), len(prompt_ids))
        output = self.generate_tokens(inputs, params)[0]
        return self.result_from_tokens(
            len(prompt_ids), output[len(prompt_ids) :], params.max_new_tokens
        )

    def _stream(
        self, kwargs: dict[str, Any], prompt_tokens: int
    ) -> Generator[StreamChunk, None, None]:
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        abandoned = threading.Event()
        outputs: list[torch.Tensor] = []

        def work() -> None:
            with torch.inference_mode():
                stopping = StoppingCriteriaList([_StopWhenSet(abandoned)])
                outputs.append(
                    self.model.generate(**kwargs, streamer=streamer, stopping_criteria=stopping)
                )

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for text in streamer:
                if text:
                    yield StreamChunk(text)
        finally:
            abandoned.set()  # no-op when the stream was read to the end
            thread.join()
        if outputs:
            new_tokens = outputs[0][0][prompt_tokens:]
            final = self.result_from_tokens(prompt_tokens, new_tokens, kwargs["max_new_tokens"])
            yield StreamChunk("", usage=final.usage, finish_reason=final.finish_reason)

    def close(self) -> None:
        """Let go of the weights now, not whenever the object is collected. On a GPU the memory
        goes back to the driver: PyTorch's caching allocator would keep it for this process,
        and a server started next (vLLM checks what is free) could not have it."""
        del self.model
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    @property
    def stop_token_ids(self) -> set[int]:
        """The token ids that end an answer (end of turn, end of text)."""
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}

    @property
    def pad_token_id(self) -> int:
        """The id that fills the short rows of a batch (the end-of-text token if none is set)."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else min(self.stop_token_ids)


@contextmanager
def _quiet_when_local(model_path: str) -> Iterator[None]:
    """Hide Transformers' per-tensor progress bar for a local folder: it loads in a second, and
    the bar would only clutter the notebook. A hub download keeps its progress."""
    local = Path(model_path).is_dir()
    was_enabled = hf_logging.is_progress_bar_enabled()
    if local:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if local and was_enabled:
            hf_logging.enable_progress_bar()
