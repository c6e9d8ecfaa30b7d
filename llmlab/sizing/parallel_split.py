"""Which GPU holds which part of a model, under tensor, pipeline and data parallelism (chapter 08).

The three ways to spread a model over GPUs differ in what each GPU keeps and in what the GPUs
must send each other for every token. ``owners`` answers the first as a grid (a model's layers
by the width of its weight matrices, each cell the GPU that holds it); ``plot_parallelism``
draws it for a real model's layer count and weight size, with the traffic each split needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from llmlab.sizing.memory import Architecture, bytes_per_param

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Split = Literal["tensor", "pipeline", "data"]
SPLITS: tuple[Split, ...] = ("tensor", "pipeline", "data")
#: Columns the grid gives each layer's weight matrices (the drawing's resolution, not the model's).
WIDTH = 16


def owners(split: Split, *, layers: int, gpus: int, width: int = WIDTH) -> np.ndarray:
    """A ``layers`` x ``width`` grid of GPU indices: who holds each slice of each layer.

    ``tensor``: every layer's matrices cut into ``gpus`` column blocks (every GPU holds a slice
    of every layer). ``pipeline``: consecutive layers, one stage per GPU (as vLLM splits them:
    as evenly as the count allows). ``data``: ``gpus`` whole copies side by side, the grid then
    ``gpus`` times as wide.
    """
    if gpus < 1 or layers < 1:
        raise ValueError("layers and gpus must be at least 1")
    if split == "pipeline" and layers < gpus:
        raise ValueError(f"{layers} layers cannot make {gpus} pipeline stages: one GPU would idle")
    if split == "tensor":
        row = np.arange(width) * gpus // width
        return np.tile(row, (layers, 1))
    if split == "pipeline":
        column = np.arange(layers) * gpus // layers
        return np.tile(column[:, None], (1, width))
    if split == "data":
        return np.repeat(np.arange(gpus), width)[None, :].repeat(layers, axis=0)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")


def weights_per_gpu_gib(arch: Architecture, split: Split, gpus: int, dtype: str) -> float:
    """Each GPU's share of the weights: a 1/gpus slice, except under data parallelism."""
    total = arch.num_params * bytes_per_param(dtype) / 2**30
    return total if split == "data" else total / gpus


def traffic(split: Split, *, layers: int, gpus: int) -> str:
    """What the GPUs exchange for every token, in words a caption can carry."""
    if split == "tensor":
        return f"{2 * layers} all-reduces per token\n(2 per layer, every GPU)"
    if split == "pipeline":
        return f"{gpus - 1} hand-offs of activations\nper token (stage to stage)"
    return "nothing: each copy\nanswers its own requests"


def part_label(split: Split, grid: np.ndarray, gpu: int) -> str:
    """What GPU ``gpu`` holds, in words: the label drawn on its part of the grid."""
    if split == "tensor":
        return f"1/{grid.max() + 1}\nof every\nlayer"
    if split == "pipeline":
        rows = np.flatnonzero(grid[:, 0] == gpu)
        return f"layers\n{rows[0]}-{rows[-1]}"
    return "the whole\nmodel"


def plot_parallelism(
    arch: Architecture, name: str, *, gpus: int = 4, dtype: str = "bfloat16"
) -> Figure:
    """Three panels, one per split, of ``arch`` over ``gpus`` GPUs, titled with each GPU's
    share of the weights and captioned with the traffic the split costs."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = ListedColormap([f"C{gpu}" for gpu in range(gpus)])  # matplotlib's default cycle
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), width_ratios=[1, 1, 1.6])
    for ax, split in zip(axes, SPLITS, strict=True):
        grid = owners(split, layers=arch.num_layers, gpus=gpus)
        ax.imshow(grid, cmap=colours, vmin=-0.5, vmax=gpus - 0.5, aspect="auto",
                  interpolation="nearest")  # fmt: skip
        for gpu in range(gpus):
            rows, columns = np.nonzero(grid == gpu)
            ax.text(columns.mean(), rows.mean(), part_label(split, grid, gpu), ha="center",
                    va="center", color="white", fontsize=8)  # fmt: skip
        if split == "data":  # a white line between the copies
            for copy in range(1, gpus):
                ax.axvline(copy * WIDTH - 0.5, color="white", linewidth=3)
        share = weights_per_gpu_gib(arch, split, gpus, dtype)
        ax.set_title(f"{split} parallel: {share:.1f} GiB of weights per GPU", fontsize=10)
        copies = " (of each copy)" if split == "data" else ""
        ax.set_xlabel(f"columns of each layer's weight matrices{copies}")
        ax.set_ylabel(f"layer (0 to {arch.num_layers - 1})")
        ax.set_xticks([])
        ax.text(0.5, -0.2, traffic(split, layers=arch.num_layers, gpus=gpus),
                transform=ax.transAxes, ha="center", va="top", fontsize=9)  # fmt: skip
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(gpu)) for gpu in range(gpus)]
    fig.legend(handles, [f"GPU {gpu}" for gpu in range(gpus)], loc="upper right", ncols=gpus)
    fig.suptitle(f"{name} ({arch.num_layers} layers, {dtype}) over {gpus} GPUs", x=0.3)
    fig.tight_layout()
    return fig
