"""Shared fixtures: one real model per test session (loading it takes seconds, not minutes)."""

import pytest

from llmlab.generation import LocalLLM

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


@pytest.fixture(scope="session")
def llm() -> LocalLLM:
    return LocalLLM()


def ask(question: str) -> list[dict[str, str]]:
    """A chat with the explicit system prompt the small default model answers best with."""
    return [SYSTEM, {"role": "user", "content": question}]
