"""Sample prompts the chapters and benchmarks share, so their figures compare like with like.

Short factual questions the default model answers well, alternating with longer requests, so
batches hold prompts of different lengths as real traffic does.
"""

from __future__ import annotations

from llmlab.messages import Message

SYSTEM_PROMPT = "You are a helpful assistant."

QUESTIONS: list[str] = [
    "What is the capital of France?",
    "Why is the sky blue? Explain it in two sentences for a ten-year-old who loves science.",
    "Name three primary colors.",
    "Write a short poem about a cat sleeping in the sun on a quiet afternoon.",
    "What is 12 times 12?",
    "Give me three tips for staying focused while studying for an exam at home.",
    "How many legs does a spider have?",
    "Explain the difference between a list and a tuple in Python, with one example of each.",
    "Who wrote Romeo and Juliet?",
    "Describe how a bicycle works, from the pedals to the wheels, in a short paragraph.",
    "What is the largest planet in the solar system?",
    "Summarize the plot of Cinderella in three sentences, as if telling it to a friend.",
    "Translate 'good morning' into Spanish.",
    "What are the main benefits of drinking water every day? List a few and explain briefly.",
    "What is the boiling point of water in Celsius?",
    "Plan a simple three-course dinner for four friends, including one vegetarian dish.",
]


def chat(question: str, system: str = SYSTEM_PROMPT) -> list[Message]:
    """A two-message chat with the explicit system prompt small models answer best with."""
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def sample_chats(count: int = len(QUESTIONS)) -> list[list[Message]]:
    """``count`` chats, cycling through the sample questions."""
    return [chat(QUESTIONS[i % len(QUESTIONS)]) for i in range(count)]
