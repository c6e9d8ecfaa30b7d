"""llmlab: the helper package of the course."""
