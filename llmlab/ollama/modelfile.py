"""Read and write Ollama's Modelfile: a model's recipe (weights, system prompt, parameters).

A Modelfile is what ``ollama create NAME -f Modelfile`` reads; the model it makes is stored under
NAME and used by that name from then on. The source chapter ends its Modelfile with
``ollama save -f my-assistant my-assistant``: Ollama has no ``save`` verb, ``create`` is the one.

The grammar, as Ollama's own parser reads it: one instruction a line (case does not matter),
``#`` starts a comment line, and a value may span lines inside triple quotes::

    # a GGUF file (relative to the Modelfile's folder), or the name of a model
    FROM ./SmolLM2-135M-Instruct.Q4_1.gguf
    SYSTEM \"\"\"You are a helpful assistant.
    Answer in one sentence.\"\"\"
    PARAMETER temperature 0.2
    PARAMETER stop <|im_end|>
    MESSAGE user What is the capital of France?
    MESSAGE assistant Paris.

``TEMPLATE`` is a Go template in Ollama. This course's server renders the part of that language
the classic single-turn templates use (``{{ .System }}``, ``{{ .Prompt }}``, ``{{ .Response }}``
and ``{{ if ... }}...{{ end }}``) and says so when a template uses more. Without a TEMPLATE the
chat template inside the GGUF file is used, which is what a GGUF-based model wants.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import LLMLabError

#: The PARAMETERs this server understands, with their types (Ollama's names).
PARAMETER_TYPES: dict[str, type] = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "num_ctx": int,
    "num_predict": int,
    "seed": int,
    "repeat_penalty": float,
    "repeat_last_n": int,
    "stop": str,
}
ROLES = ("system", "user", "assistant")
INSTRUCTIONS = ("FROM", "SYSTEM", "TEMPLATE", "PARAMETER", "MESSAGE", "LICENSE", "ADAPTER")
TRIPLE = '"""'
_TEMPLATE_TAG = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)
_TEMPLATE_VARIABLES = (".System", ".Prompt", ".Response")


class ModelfileError(LLMLabError, ValueError):
    """A Modelfile (or the fields of a create request) that cannot make a model."""


@dataclass
class Modelfile:
    """What a Modelfile says. ``from_`` is a model name or the absolute path of a GGUF file."""

    from_: str
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    license: list[str] = field(default_factory=list)

    @property
    def from_gguf(self) -> bool:
        return _looks_like_path(self.from_)

    def create_args(self, gguf_digest: str | None = None) -> dict[str, Any]:
        """Keyword arguments for the official client's ``create``, as the ``ollama`` CLI makes
        them of a Modelfile. A real Ollama takes a GGUF file only as an uploaded blob: upload it
        first (``digest = client.create_blob(path)``) and pass the digest. Without one, ``from_``
        is the path, which only the course's server accepts."""
        source: dict[str, Any] = {"from_": self.from_}
        if gguf_digest:
            source = {"files": {Path(self.from_).name: gguf_digest}}
        fields = {
            "system": self.system,
            "template": self.template,
            "parameters": self.parameters or None,
            "messages": self.messages or None,
            "license": self.license or None,
        }
        return source | {name: value for name, value in fields.items() if value is not None}

    def render(self) -> str:
        """The Modelfile text again (what Ollama's ``/api/show`` returns as ``modelfile``)."""
        lines = [f"FROM {self.from_}"]
        if self.template is not None:
            lines.append(f"TEMPLATE {_quote(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {_quote(self.system)}")
        for name, value in self.parameters.items():
            for one in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {name} {_quote_parameter(one)}")
        for message in self.messages:
            lines.append(f"MESSAGE {message['role']} {_quote(message['content'])}")
        lines += [f"LICENSE {_quote(text)}" for text in self.license]
        return "\n".join(lines) + "\n"


def parse_modelfile(text: str, base_dir: str | Path | None = None) -> Modelfile:
    """Parse a Modelfile; a relative FROM path is resolved against ``base_dir`` (default: cwd)."""
    base = Path(base_dir or Path.cwd())
    lines = text.splitlines()
    found: dict[str, Any] = {"parameters": {}, "messages": [], "license": []}
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        word, _, rest = _split_word(line)
        instruction = word.upper()
        if instruction not in INSTRUCTIONS:
            raise ModelfileError(
                f"line {number}: unknown instruction {word!r}; a Modelfile has "
                f"{', '.join(INSTRUCTIONS[:-1])} and {INSTRUCTIONS[-1]}"
            )
        if instruction == "ADAPTER":
            raise ModelfileError(
                f"line {number}: ADAPTER (a LoRA adapter) is not supported by this course's "
                f"server; merge the adapter into the model and convert that to GGUF (chapter 04)"
            )
        key = ""
        if instruction in ("PARAMETER", "MESSAGE"):
            key, _, rest = _split_word(rest)
            if not key:
                raise ModelfileError(f"line {number}: {instruction} needs a name and a value")
        value, index = _read_value(rest, lines, index, number, f"{instruction} {key}".strip())
        _apply(found, instruction, key.lower(), value, number, base)
    if "from_" not in found:
        raise ModelfileError(
            "the Modelfile has no FROM line; start it with FROM and a model name or the path "
            "of a .gguf file"
        )
    return Modelfile(**found)


def convert_parameter(name: str, value: Any) -> Any:
    """``value`` as the type parameter ``name`` takes (``stop``: a list); else ``ValueError``."""
    kind = PARAMETER_TYPES[name]
    if kind is str:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, str):
            return [value]
        raise ValueError(f"{name} needs text, not {value!r}")
    try:
        converted = kind(value) if isinstance(value, str) else value
        if isinstance(converted, bool) or not isinstance(converted, (int, float)):
            raise TypeError
        if kind is int and converted != int(converted):
            raise TypeError
        return kind(converted)
    except (TypeError, ValueError):
        wanted = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} needs {wanted}, not {value!r}") from None


def unknown_parameter(name: str) -> str:
    """The message for a parameter this server does not know (with the likely one, for a typo)."""
    close = difflib.get_close_matches(name, PARAMETER_TYPES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(sorted(PARAMETER_TYPES))
    return f"unknown PARAMETER {name!r}; {hint}this server knows {known}"


def check_template(template: str) -> None:
    """Raise ``ValueError`` unless this server can render ``template`` (see the module doc)."""
    depth = 0
    for kind, tag in _template_tokens(template):
        if kind == "text" or tag in _TEMPLATE_VARIABLES:
            continue
        if tag.startswith("if ") and tag[3:].strip() in _TEMPLATE_VARIABLES:
            depth += 1
        elif tag == "end" and depth:
            depth -= 1
        else:
            raise ValueError(
                f"TEMPLATE uses {{{{ {tag} }}}}, which this server cannot render; it renders "
                f"{{{{ .System }}}}, {{{{ .Prompt }}}}, {{{{ .Response }}}} and {{{{ if ... }}}}"
                f"...{{{{ end }}}}. Leave TEMPLATE out to use the chat template in the GGUF file"
            )
    if depth:
        raise ValueError("TEMPLATE has an {{ if ... }} without its {{ end }}")


def render_template(template: str, messages: list[dict[str, str]]) -> str:
    """The prompt an Ollama single-turn TEMPLATE makes of a chat, built the way Ollama does.

    Each user turn, with the system prompt before it and the answer after it, fills the template
    once; the last turn stops at ``{{ .Response }}``, where the model takes over.
    """
    parts: list[str] = []
    turn = dict.fromkeys(_TEMPLATE_VARIABLES, "")
    for message in messages:
        if message["role"] != "assistant" and (turn[".Prompt"] or turn[".Response"]):
            parts.append(_fill(template, turn, last=False))
            turn = dict.fromkeys(_TEMPLATE_VARIABLES, "")
        slot = {"system": ".System", "user": ".Prompt"}.get(message["role"], ".Response")
        turn[slot] = message["content"]
    parts.append(_fill(template, turn, last=True))
    return "".join(parts)


def _fill(template: str, values: dict[str, str], *, last: bool) -> str:
    out: list[str] = []
    showing = [True]
    for kind, value in _template_tokens(template):
        if kind == "text":
            out.append(value if showing[-1] else "")
        elif value.startswith("if "):
            showing.append(showing[-1] and bool(values[value[3:].strip()]))
        elif value == "end":
            showing.pop()
        elif last and value == ".Response":
            break  # the model writes the rest
        elif showing[-1]:
            out.append(values[value])
    return "".join(out)


def _template_tokens(template: str) -> list[tuple[str, str]]:
    """``("text", ...)`` and ``("tag", ...)`` pieces, with ``{{-`` and ``-}}`` trimming applied."""
    tokens: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in _TEMPLATE_TAG.finditer(template):
        trim_before, tag, trim_after = match.groups()
        text = template[position : match.start()]
        text = text.lstrip() if trim_next else text
        tokens += [("text", text.rstrip() if trim_before else text), ("tag", tag)]
        position, trim_next = match.end(), bool(trim_after)
    tail = template[position:]
    return [*tokens, ("text", tail.lstrip() if trim_next else tail)]


def _split_word(text: str) -> tuple[str, str, str]:
    parts = text.split(None, 1)
    return (parts[0], " ", parts[1]) if len(parts) == 2 else (text.strip(), "", "")


def _read_value(rest: str, lines: list[str], index: int, number: int, what: str) -> tuple[str, int]:
    """The value after an instruction; a triple-quoted one may go on over the next lines."""
    rest = rest.strip()
    if rest.startswith(TRIPLE):
        body, pieces = rest[3:], []
        while TRIPLE not in body:
            pieces.append(body)
            if index == len(lines):
                raise ModelfileError(f'line {number}: the """ opened here is never closed')
            body, index = lines[index], index + 1
        value, _, after = body.partition(TRIPLE)
        if after.strip():
            raise ModelfileError(f'line {index}: unexpected text after the closing """: {after!r}')
        return "\n".join([*pieces, value]), index
    if len(rest) >= 2 and rest[0] == rest[-1] == '"':
        rest = rest[1:-1]
    if not rest:
        raise ModelfileError(f"line {number}: {what} needs a value")
    return rest, index


def _apply(
    found: dict[str, Any], instruction: str, key: str, value: str, number: int, base: Path
) -> None:
    if instruction == "FROM":
        if "from_" in found:
            raise ModelfileError(f"line {number}: a second FROM; a Modelfile has one")
        found["from_"] = _resolve_from(value, base, number)
    elif instruction == "PARAMETER":
        if key not in PARAMETER_TYPES:
            raise ModelfileError(f"line {number}: {unknown_parameter(key)}")
        try:
            converted = convert_parameter(key, value)
        except ValueError as error:
            raise ModelfileError(f"line {number}: PARAMETER {error}") from None
        if key == "stop":
            converted = found["parameters"].get("stop", []) + converted
        found["parameters"][key] = converted
    elif instruction == "MESSAGE":
        if key not in ROLES:
            raise ModelfileError(
                f"line {number}: MESSAGE role must be system, user or assistant, not {key!r}"
            )
        found["messages"].append({"role": key, "content": value})
    elif instruction == "TEMPLATE":
        try:
            check_template(value)
        except ValueError as error:
            raise ModelfileError(f"line {number}: {error}") from None
        found["template"] = value
    elif instruction == "LICENSE":
        found["license"].append(value)
    else:
        found["system"] = value


def _looks_like_path(value: str) -> bool:
    return value.lower().endswith(".gguf") or value.startswith(("/", "./", "../", "~"))


def _resolve_from(value: str, base: Path, number: int) -> str:
    if not _looks_like_path(value):
        return value
    path = (base / Path(value).expanduser()).resolve()
    if not path.is_file():
        raise ModelfileError(f"line {number}: FROM {value}: there is no file at {path}")
    return str(path)


def _quote(text: str) -> str:
    return f"{TRIPLE}{text}{TRIPLE}"


def _quote_parameter(value: Any) -> str:
    text = str(value)
    return _quote(text) if text != text.strip() or "\n" in text or not text else text
