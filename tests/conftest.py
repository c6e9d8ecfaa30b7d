"""Shared fixtures: one real model per test session (loading it takes seconds, not minutes)."""

import pytest

from llmlab.generation import LocalLLM
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.prompts import chat as ask  # noqa: F401 (re-exported for the tests)

SYSTEM = {"role": "system", "content": SYSTEM_PROMPT}


@pytest.fixture(scope="session")
def llm() -> LocalLLM:
    return LocalLLM()
