"""What a generation is asked for and what it gives back, with no PyTorch: the sampling
parameters (checked on creation), token usage, results and streamed chunks, and a chat's token
ids through the tokenizer's own template.

``LocalLLM`` (``generation.py``) runs them in process; the course's service and its gateway in
front of llama-server (``llmlab.service``) speak them too, so the gateway loads no PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from llmlab.messages import Message, validate_messages

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FinishReason = Literal["stop", "length"]


#: Temperatures below this decode greedily (vLLM's ``_SAMPLING_EPS``).
GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. Checked on creation, so a typo fails before generating."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    #: Write exactly max_new_tokens (vLLM's name for it): equal work when comparing speeds.
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be a positive int, not {self.max_new_tokens!r}")
        if not 0 <= self.temperature <= 2:
            problems.append(f"temperature must be in [0, 2] (0 = greedy), not {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], not {self.top_p}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            problems.append(f"top_k must be an int >= 0 (0 = off), not {self.top_k!r}")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, not {self.repetition_penalty}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        """Temperature 0, or so close to it that dividing the logits by it overflows to inf
        (a fuzzer sent 1.2e-38); vLLM draws the same line at 1e-5."""
        return self.temperature < GREEDY_BELOW

    def generate_kwargs(self) -> dict[str, object]:
        """The arguments ``model.generate`` expects, with sampling off when greedy."""
        kwargs: dict[str, object] = {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.max_new_tokens if self.ignore_eos else None,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.greedy:
            # Reset the sampling knobs too: a model's generation_config may set them, and
            # Transformers warns when they are set with sampling off.
            return kwargs | {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return kwargs | {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k or None,
        }


@dataclass(frozen=True)
class Usage:
    """Tokens in and out, counted by the tokenizer: what an API bills and a benchmark counts."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerationResult:
    text: str
    usage: Usage
    finish_reason: FinishReason


@dataclass(frozen=True)
class StreamChunk:
    """A piece of streamed text. The last chunk has empty text, the usage and the reason."""

    text: str
    usage: Usage | None = None
    finish_reason: FinishReason | None = None


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | Sequence[Message]) -> list[int]:
    """Token ids for a plain prompt (as is) or a chat (through the tokenizer's chat template)."""
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return tokenizer.apply_chat_template(
        validate_messages(prompt), add_generation_prompt=True, return_dict=True
    )["input_ids"]


def sampling_params(params: SamplingParams | None, overrides: dict[str, object]) -> SamplingParams:
    """``params`` (or the defaults) with keyword overrides applied, misspellings named."""
    base = params or SamplingParams()
    unknown = set(overrides) - set(asdict(base))
    if unknown:
        raise TypeError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
    return SamplingParams(**(asdict(base) | overrides))
