"""A chat message, and the check every chat goes through before a template or a server sees it.

Kept apart from ``llmlab.local.generation`` so that code that only sends chats over HTTP (the
clients, the benchmark harness, the router experiments, the chat page) does not load PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


def validate_messages(messages: Sequence[Message]) -> list[Message]:
    """Check a chat history before it reaches the template, and say what is wrong."""
    if isinstance(messages, (str, bytes)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...}")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise ValueError(f"messages[{i}] must be a dict with the keys 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}] has role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}]['content'] must be a string")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] == "assistant":
        raise ValueError("the last message is the assistant's; end with a user message")
    return checked
