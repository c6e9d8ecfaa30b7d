"""How many requests fit in a KV cache: room reserved for the longest answer, or handed out a
block at a time (vLLM's PagedAttention, chapter 03).

A server that reserves ``max_model_len`` tokens of cache for every request holds few requests
at once, although most of each reservation stays empty. vLLM cuts the cache into blocks of
``block_size`` tokens and gives a request one more block only when its last one is full, so a
request wastes less than one block. ``KVPool`` does the arithmetic from the figures the
server reports (``vllm:cache_config_info``: ``block_size`` and ``num_gpu_blocks``, which the
CPU build also uses for its cache); ``plot_kv_pool`` draws both ways of filling the same pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FREE = (0.92, 0.92, 0.92, 1.0)


@dataclass(frozen=True)
class KVPool:
    """A KV cache of ``blocks`` blocks of ``block_size`` tokens each."""

    blocks: int
    block_size: int

    @classmethod
    def from_info(cls, info: dict[str, str]) -> KVPool:
        """From vLLM's ``vllm:cache_config_info`` labels (``llmlab.bench.read_info``)."""
        return cls(blocks=int(info["num_gpu_blocks"]), block_size=int(info["block_size"]))

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size

    def blocks_for(self, tokens: int) -> int:
        """Blocks a request of ``tokens`` tokens holds: whole blocks, the last one part-full."""
        if tokens < 1:
            raise ValueError("a request holds at least one token")
        return ceil(tokens / self.block_size)

    def requests_that_fit(self, tokens_per_request: int) -> int:
        """How many requests each holding ``tokens_per_request`` tokens fit at once."""
        return self.blocks // self.blocks_for(tokens_per_request)


def pool_image(
    pool: KVPool, *, requests: int, held_blocks: int, used_blocks: int, columns: int
) -> np.ndarray:
    """The pool as an RGBA image, one cell per block: each request's blocks in its own colour
    (solid where it has tokens, pale where it holds room it does not use), the rest grey."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    cells = np.tile(FREE, (ceil(pool.blocks / columns) * columns, 1))
    cells[pool.blocks :] = (1.0, 1.0, 1.0, 1.0)  # past the end of the pool
    fitting = min(requests, pool.blocks // held_blocks)
    for request in range(fitting):
        start = request * held_blocks
        colour = np.array(colours(request % 10))
        cells[start : start + held_blocks] = (*colour[:3], 0.25)
        cells[start : start + used_blocks] = colour
    return cells.reshape(-1, columns, 4)


def plot_kv_pool(
    pool: KVPool, *, tokens_per_request: int, max_model_len: int, requests: int = 16
) -> Figure:
    """The same pool filled with ``requests`` requests of ``tokens_per_request`` tokens, two
    ways: each reserving ``max_model_len`` tokens, and paged."""
    import matplotlib.pyplot as plt

    if tokens_per_request > max_model_len:
        raise ValueError(f"a request of {tokens_per_request} tokens is over max_model_len")
    used = pool.blocks_for(tokens_per_request)
    reserved = pool.blocks_for(max_model_len)
    columns = max(8, ceil((2 * pool.blocks) ** 0.5))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ways = [
        (f"reserving {max_model_len:,} tokens each", reserved),
        (f"paged: {pool.block_size}-token blocks as needed", used),
    ]
    for ax, (way, held) in zip(axes, ways, strict=True):
        image = pool_image(pool, requests=requests, held_blocks=held, used_blocks=used,
                           columns=columns)  # fmt: skip
        ax.imshow(image, aspect="auto", interpolation="nearest")
        fit = pool.requests_that_fit(held * pool.block_size)
        shown = min(requests, fit)
        ax.set_title(f"{way}\n{shown} requests hold {shown * held} of {pool.blocks} blocks; "
                     f"{fit} would fit", fontsize=10)  # fmt: skip
        ax.set_xlabel(f"block ({pool.block_size} tokens each), {columns} per row")
        ax.set_ylabel("row of blocks")
    fig.suptitle(f"One KV cache of {pool.tokens:,} tokens, requests of {tokens_per_request} "
                 f"tokens (solid: tokens held, pale: reserved and empty, grey: free)")  # fmt: skip
    fig.tight_layout()
    return fig
