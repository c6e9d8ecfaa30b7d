"""``/api/create``: the Modelfile a create request describes, from a Modelfile text, the
request's fields, or both (fields win), built on a model, a GGUF path, or an uploaded blob."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmlab.ollama.modelfile import (
    PARAMETER_TYPES,
    Modelfile,
    ModelfileError,
    check_template,
    convert_parameter,
    parse_modelfile,
    unknown_parameter,
)
from llmlab.ollama.schemas import ApiError, CreateBody
from llmlab.ollama.store import ModelStore


def create_recipe(body: CreateBody, store: ModelStore) -> Modelfile:
    """The recipe a create request describes: a Modelfile text, fields, or both (fields win)."""
    for field, what in (("adapters", "ADAPTER (LoRA adapters)"), ("quantize", "quantize")):
        if getattr(body, field):
            raise ApiError(
                400, f"{what} is not supported by this server; quantize or merge with "
                "llama.cpp's tools (chapter 04) and create the model FROM the GGUF file",
            )  # fmt: skip
    recipe = parse_modelfile(body.modelfile) if body.modelfile else None
    source = body.from_ or _gguf_from_files(body.files, store)
    if source:  # a path is resolved and checked as a Modelfile's FROM would be
        from_ = parse_modelfile(f"FROM {source}").from_
    elif recipe:
        from_ = recipe.from_
    else:
        raise ApiError(400, 'say what to build on: "from" (a model or a .gguf path) or "files"')
    recipe = recipe or Modelfile(from_=from_)
    if body.template is not None:
        try:
            check_template(body.template)
        except ValueError as error:
            raise ModelfileError(str(error)) from None
    messages = [message.model_dump(include={"role", "content"}) for message in body.messages or []]
    licenses = [body.license] if isinstance(body.license, str) else body.license or []
    return replace(
        recipe,
        from_=from_,
        system=recipe.system if body.system is None else body.system,
        template=recipe.template if body.template is None else body.template,
        parameters=recipe.parameters | _parameters(body.parameters or {}),
        messages=messages or recipe.messages,
        license=recipe.license + licenses,
    )


def _parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """A create request's ``parameters``, checked and typed as Modelfile PARAMETERs are."""
    checked = {}
    for name, value in parameters.items():
        if name not in PARAMETER_TYPES:
            raise ModelfileError(unknown_parameter(name))
        try:
            checked[name] = convert_parameter(name, value)
        except ValueError as error:
            raise ModelfileError(f"parameter {error}") from None
    return checked


def _gguf_from_files(files: dict[str, str] | None, store: ModelStore) -> str | None:
    """``files`` (name -> blob digest, uploaded to ``/api/blobs``) naming one GGUF file."""
    if not files:
        return None
    ggufs = [digest for name, digest in files.items() if name.lower().endswith(".gguf")]
    if len(ggufs) != 1 or len(files) != 1:
        raise ApiError(400, f"this server makes a model from one .gguf file, not {list(files)}")
    path = store.blob_path(ggufs[0])
    if not path.is_file():
        raise ApiError(400, f"no blob {ggufs[0]}: upload it first (POST /api/blobs/<digest>)")
    return str(path)
