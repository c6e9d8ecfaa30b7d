"""What quantization costs in quality, measured the way llama.cpp's developers measure it.

``llama-perplexity`` runs a model over a fixed text and reports its perplexity (how surprised
the model is by each next token: lower is better). Run once on the reference model with
``--kl-divergence-base FILE``, it also saves the reference's next-token distribution at every
position; run on a quantized model with ``--kl-divergence``, it compares the two distributions
position by position: the mean Kullback-Leibler divergence (0 when they are identical) and how
often both put the same token on top. KL divergence sees every change in the distributions,
including those too small to change a greedy answer, so it ranks quantizations more reliably
than a handful of answers.

The text (``TEXT``) ships with the course: the opening of the First Book of Isaac Newton's
*Opticks* (fourth edition, 1730; public domain), as transcribed by the Online Distributed
Proofreading Team (pgdp.net) for Project Gutenberg, with the italics marks removed. About 3,500
tokens with SmolLM2's tokenizer: 7 chunks of 512, each scored on its second half, as
``llama-perplexity`` does.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from llmlab.errors import LLMLabError
from llmlab.llamacpp.build import LlamaCppTools
from llmlab.llamacpp.cpu import llama_server_cpu_args
from llmlab.settings import cache_dir

TEXT = Path(__file__).parent / "data" / "opticks.txt"
#: Tokens per chunk: small enough that the course's text gives several chunks.
CONTEXT = 512


class PerplexityError(LLMLabError, RuntimeError):
    """``llama-perplexity`` failed, or printed no figures; the message quotes its output."""


@dataclass(frozen=True)
class Quality:
    """One model against the reference: perplexity on the text, and how far its next-token
    distributions are from the reference's."""

    perplexity: float
    perplexity_error: float
    #: Perplexity over the reference's, computed per chunk (1.0: no change).
    perplexity_ratio: float
    #: Mean KL divergence from the reference's distribution, in nats per token.
    mean_kld: float
    #: Share of positions where the model's most likely token is the reference's.
    same_top: float

    def row(self) -> dict[str, float]:
        return {
            "perplexity": self.perplexity,
            "± (perplexity)": self.perplexity_error,
            "perplexity / reference's": self.perplexity_ratio,
            # Never below 0 in theory; llama.cpp's rounding can print -0.000000.
            "mean KL divergence": max(0.0, self.mean_kld),
            "same top token (%)": 100 * self.same_top,
        }


def measure_quality(
    tools: LlamaCppTools,
    reference: Path,
    models: dict[str, Path],
    *,
    text: Path = TEXT,
    chunks: int | None = None,
    progress: bool = True,
) -> dict[str, Quality]:
    """Score ``reference`` on ``text`` (its first ``chunks`` chunks of ``CONTEXT`` tokens, or all
    of it), then every model of ``models`` against it.

    The reference's distributions (about 170 MB for the course's text and model) are kept in a
    temporary folder of the cache while the models are compared, then deleted.
    """
    scratch = cache_dir() / "llama.cpp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="kld-") as folder:
        logits = Path(folder) / "reference.kld"
        limit = ["--chunks", str(chunks)] if chunks else []
        _run(tools, reference, ["-f", str(text), "--kl-divergence-base", str(logits), *limit])
        return {
            name: parse_quality(
                _run(tools, model, ["--kl-divergence-base", str(logits), "--kl-divergence"])
            )
            for name, model in tqdm(models.items(), desc="llama-perplexity", disable=not progress)
        }


def parse_quality(output: str) -> Quality:
    """The figures ``llama-perplexity --kl-divergence`` prints."""
    ppl = r"Mean PPL\(Q\)\s*:\s*([\d.]+)\s*±\s*([\d.]+)"
    return Quality(
        perplexity=_number("Mean PPL(Q)", ppl, output),
        perplexity_error=_number("Mean PPL(Q)", ppl, output, group=2),
        perplexity_ratio=_number(
            "Mean PPL(Q)/PPL(base)", r"PPL\(Q\)/PPL\(base\)\s*:\s*([\d.]+)", output
        ),
        mean_kld=_number("Mean KLD", r"Mean\s+KLD:\s+(-?[\d.]+)", output),
        same_top=_number("Same top p", r"Same top p:\s+([\d.]+)", output) / 100,
    )


def _number(label: str, pattern: str, output: str, *, group: int = 1) -> float:
    found = re.search(pattern, output)
    if not found:
        raise PerplexityError(f"llama-perplexity printed no {label!r}:\n{output[-2000:]}")
    return float(found.group(group))


def _run(tools: LlamaCppTools, model: Path, arguments: list[str]) -> str:
    if tools.perplexity is None:
        raise PerplexityError(
            f"No llama-perplexity beside {tools.server}: install llama.cpp's tools with it "
            "(Homebrew's llama.cpp has them), or unset LLAMA_SERVER to use the course's build."
        )
    # The same build as llama-server, so the same CPU flags (``--no-repack`` where AMX crashes).
    command = [str(tools.perplexity), "-m", str(model), "-c", str(CONTEXT), *arguments,
               *llama_server_cpu_args(tools.server)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    output = done.stdout + done.stderr
    if done.returncode:
        raise PerplexityError(
            f"llama-perplexity exited with code {done.returncode}:\n{output[-2000:]}"
        )
    return output
