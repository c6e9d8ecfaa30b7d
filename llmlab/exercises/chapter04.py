"""Chapter 04's exercise: ``describe_gguf``, what a GGUF file says about itself, checked against
``read_gguf`` on the course's file and on a tiny file of another architecture."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING

from llmlab.exercises.common import (
    ExerciseError,
    call_student,
    function_name,
    kind_of,
    passed,
    shorten,
)

if TYPE_CHECKING:
    from llmlab.llamacpp.gguf import GGUFSummary


GGUF_KEYS = ("architecture", "context_length", "quantization", "tensors")
_TEXT_KEYS = ("architecture", "quantization")

#: The file the checker writes beside the one it is given: another architecture, context length
#: and file type, so that ``"llama.context_length"`` or a value copied from the course's file
#: fails. (architecture, context length, file type name, tensors per storage type).
_TINY_GGUF = ("qwen2", 32768, "MOSTLY_Q4_K_M", {"Q4_K": 6, "Q6_K": 1, "F32": 3})


def check_gguf_summary(
    describe_gguf: Callable[[str], dict], path: str | os.PathLike[str] | None = None
) -> None:
    """Check ``describe_gguf(path) -> {"architecture", "context_length", "quantization",
    "tensors"}`` against ``llmlab.llamacpp.gguf.read_gguf``.

    ``path`` defaults to the course's GGUF file (``llmlab.models.default_gguf()``); the checker
    also tries a tiny file of another architecture that it writes, so that an answer that only
    fits llama files (a ``"llama.context_length"`` key) fails. ``quantization`` is the name of
    ``general.file_type`` as llama.cpp spells it, ``"MOSTLY_Q4_1"``, or without its ``MOSTLY_``
    (or ``ALL_``) prefix, ``"Q4_1"``, in any case: both name the same file type.
    """
    import tempfile

    from llmlab.models import default_gguf

    __tracebackhide__ = True
    name = function_name(describe_gguf)
    path = Path(path) if path is not None else default_gguf()
    with tempfile.TemporaryDirectory() as folder:
        architecture, context_length, file_type, tensors = _TINY_GGUF
        tiny = _write_gguf(
            Path(folder) / "tiny.gguf", architecture, context_length, file_type, tensors
        )
        files = [
            (path.name, path),
            (f"a tiny {architecture} GGUF file that the checker wrote ({tiny.name})", tiny),
        ]
        for case, file in files:
            _check_one_gguf(describe_gguf, f"{name}, on {case}", file)
    passed(f"{name} describes {path.name} and a {architecture} file as read_gguf does")


def _check_one_gguf(describe_gguf: Callable[[str], dict], where: str, path: Path) -> None:
    from llmlab.llamacpp.gguf import read_gguf

    __tracebackhide__ = True
    summary = read_gguf(path)
    architecture = summary.metadata["general.architecture"]
    key = f"{architecture}.context_length"
    hints: dict[type[BaseException], str] = {
        KeyError: (
            "A GGUF file has the keys its header lists (print(list(reader.fields)) shows them). "
            f"This one's architecture is {architecture!r}, so its context length is under "
            f"{key!r}: build that key from general.architecture, "
            "f'{architecture}.context_length', rather than writing 'llama.'."
        )
    }
    got = call_student(describe_gguf, (str(path),), where, hints)
    problem = _gguf_problem(got, summary)
    if problem:
        raise ExerciseError(f"{where}: {problem}")


def _gguf_problem(got: object, summary: GGUFSummary) -> str | None:
    if not isinstance(got, Mapping):
        return f"it returned {kind_of(got)}; return a dict with the keys {GGUF_KEYS}."
    missing = [key for key in GGUF_KEYS if key not in got]
    if missing:
        return f"the dict lacks {missing} (it has {sorted(map(str, got))}); use {GGUF_KEYS}."
    for key in GGUF_KEYS:
        problem = _raw_gguf_value(key, got[key])
        if problem:
            return problem
    return (
        _architecture_problem(got["architecture"], summary)
        or _context_length_problem(got["context_length"], summary)
        or _quantization_problem(got["quantization"], summary)
        or _tensor_count_problem(got["tensors"], summary)
    )


#: How to take each value out of its GGUFReader field: the course's way, and by hand.
_GGUF_VALUE_OF = {
    "architecture": ("field.contents()", "bytes(field.parts[field.data[0]]).decode()"),
    "context_length": ("field.contents()", "int(field.parts[field.data[0]][0])"),
    "quantization": (
        "gguf.LlamaFileType(field.contents()).name",
        "gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name",
    ),
    "tensors": ("len(reader.tensors)", "int(field.parts[field.data[0]][0]) of GGUF.tensor_count"),
}


def _raw_gguf_value(key: str, value: object) -> str | None:
    """Say so when a value is still in GGUFReader's raw form (a field, numpy, bytes)."""
    import numpy as np
    from gguf import ReaderField

    text = key == "architecture"
    course, by_hand = _GGUF_VALUE_OF[key]
    value_of = (
        f"Take {course} (llmlab.llamacpp.gguf.read_gguf reads every field with field.contents()), "
        f"or by hand {by_hand}"
    )
    if isinstance(value, ReaderField):
        return (
            f"{key} is the GGUFReader field itself (a ReaderField), not its value. A field holds "
            "the raw pieces of a key-value pair as they lie in the file (field.parts: the key's "
            "length, the key, the type, the value) and the indexes of the pieces that hold the "
            f"value (field.data). {value_of}."
        )
    if isinstance(value, np.ndarray):
        what = (
            "the bytes of the text"
            if value.dtype == np.uint8
            else "a one-element array holding the number"
        )
        return (
            f"{key} is a numpy array ({shorten(repr(value))}): {what}, as field.parts stores it. "
            f"{value_of}."
        )
    if key == "quantization" and _is_integer(value):
        return None  # general.file_type's number: _quantization_problem names it
    if isinstance(value, np.generic):
        fix = "str(...)" if text else "int(...)"
        return (
            f"{key} is a numpy {type(value).__name__} ({value}); make it a Python "
            f"{'str' if text else 'int'} with {fix}: numpy values do not go into JSON."
        )
    if isinstance(value, bytes | bytearray):
        return f"{key} is {type(value).__name__} ({shorten(repr(value))}); decode it: .decode()."
    if key == "tensors" and isinstance(value, list | tuple):
        return "tensors is the list of tensors itself; return how many: len(reader.tensors)."
    if isinstance(value, list):
        return (
            f"{key} is a list ({shorten(repr(value))}). If it is field.data: that holds the "
            f"indexes of the parts that hold the value, not the value. {value_of}."
        )
    if isinstance(value, str) and re.fullmatch(r"\[[\d\s,]+\]", value):
        return f"{key} is {shorten(repr(value))}, a numpy array printed as text. {value_of}."
    if key in _TEXT_KEYS and not isinstance(value, str):
        return f"{key} is {kind_of(value)}; return a str."
    if key not in _TEXT_KEYS and not _is_integer(value):
        return f"{key} is {kind_of(value)} ({shorten(repr(value))}); return an int."
    return None


def _is_integer(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _architecture_problem(got: str, summary: GGUFSummary) -> str | None:
    expected = summary.metadata["general.architecture"]
    if got == expected:
        return None
    return (
        f"architecture is {got!r}, but this file's general.architecture is {expected!r}: read "
        "it from the file, reader.fields['general.architecture'].contents()."
    )


def _context_length_problem(got: int, summary: GGUFSummary) -> str | None:
    architecture = summary.metadata["general.architecture"]
    key = f"{architecture}.context_length"
    expected = summary.metadata[key]
    if got == expected:
        return None
    other = next(
        (name for name, value in summary.metadata.items() if value == got and name != key), None
    )
    read_instead = (
        f"the context length is under {key!r}: build the key from general.architecture, "
        "f'{architecture}.context_length'."
    )
    if other:
        return f"context_length is {got}, the value of {other!r}; {read_instead}"
    return (
        f"context_length is {got}, but this file's {key} is {expected}. Read it from the file "
        f"(not from the model card, nor from a llama file): {read_instead}"
    )


def _quantization_problem(got: str | int, summary: GGUFSummary) -> str | None:
    number = summary.metadata.get("general.file_type")
    expected = _quantization_name(summary)
    if not isinstance(got, str):  # an int: _raw_gguf_value let only ints through
        got = int(got)
        if got == number:
            return (
                f"quantization is {got}, the number general.file_type stores; give its name: "
                f"gguf.LlamaFileType({got}).name is {_file_type_name(got)!r} ({expected!r} is "
                "fine too)."
            )
        return f"quantization is {kind_of(got)} ({got!r}); return the file type's name, a str."
    normal = _normal_quantization(got)
    if normal == expected:
        return None
    if normal in summary.tensor_types:
        count = summary.tensor_types[normal]
        return (
            f"quantization is {got!r}, the type {count} of the {sum(summary.tensor_types.values())}"
            f" tensors are stored in. A file mixes storage types (here {summary.tensor_types}); "
            f"its file type, general.file_type, names the recipe it was quantized with: "
            f"{expected!r}. Read general.file_type and name it with gguf.LlamaFileType(...).name."
        )
    source = (
        f"general.file_type is {number}, and gguf.LlamaFileType({number}).name is "
        f"{_file_type_name(int(number))!r}"
        if isinstance(number, Integral)
        else "this file has no general.file_type"
    )
    return (
        f"quantization is {got!r}, expected {expected!r}: {source}. Read it from the file's "
        "metadata, not from its name."
    )


def _quantization_name(summary: GGUFSummary) -> str:
    """``general.file_type``'s name, normalized; for a file without one (old converters), the
    storage type of most of its tensors."""
    number = summary.metadata.get("general.file_type")
    if isinstance(number, int):
        return _normal_quantization(_file_type_name(number))
    return max(summary.tensor_types, key=summary.tensor_types.__getitem__)


def _file_type_name(number: int) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(number).name
    except ValueError:
        return str(number)


def _normal_quantization(name: str) -> str:
    """``"MOSTLY_Q4_1"``, ``"q4_1"`` and ``"Q4_1"`` alike: the same file type."""
    return name.strip().upper().removeprefix("MOSTLY_").removeprefix("ALL_")


def _tensor_count_problem(got: int, summary: GGUFSummary) -> str | None:
    expected = sum(summary.tensor_types.values())
    if got == expected:
        return None
    fix = "count the tensors themselves: len(reader.tensors)"
    quantized = sum(n for kind, n in summary.tensor_types.items() if kind not in ("F32", "F16"))
    mistakes = {
        len(summary.metadata): "the number of metadata fields, len(reader.fields)",
        summary.metadata["GGUF.kv_count"]: "the number of metadata keys (GGUF.kv_count)",
        summary.parameters: "the number of weights (parameters), not of tensors",
        len(summary.tensor_types): "the number of storage types, not of tensors",
        quantized: "the number of quantized tensors; the F32 ones (the norms) count too",
    }
    if got in mistakes:
        return f"tensors is {got}: {mistakes[got]}. It should be {expected}: {fix}."
    return f"tensors is {got}, expected {expected}: {fix}."


def _write_gguf(
    path: Path, architecture: str, context_length: int, file_type: str, tensors: dict[str, int]
) -> Path:
    """Write a GGUF file of a few KiB: the given metadata and ``tensors`` (storage type -> how
    many) of 256 weights each, all zeros. It describes itself like a real one; it runs nothing."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType

    writer = GGUFWriter(path, arch=architecture)
    writer.add_name(f"tiny {architecture}")
    writer.add_block_count(1)
    writer.add_context_length(context_length)
    writer.add_file_type(LlamaFileType[file_type])
    index = 0
    for kind, count in tensors.items():
        quant = GGMLQuantizationType[kind]
        block, size = GGML_QUANT_SIZES[quant]
        for _ in range(count):
            data = np.zeros(256 // block * size, dtype=np.uint8)
            writer.add_tensor(f"blk.{index}.weight", data, raw_dtype=quant)
            index += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
