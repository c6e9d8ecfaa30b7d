"""The few errors a student meets, each with a message that says what to do next."""

from __future__ import annotations


class LLMLabError(Exception):
    """Base class of every error raised by llmlab."""


class MissingPackageError(LLMLabError, ImportError):
    """A package the course needs is not installed."""

    def __init__(self, package: str, install: str, why: str) -> None:
        super().__init__(f"{why} needs the package '{package}'. Install it with:\n    {install}")
        self.package = package


class ModelNotFoundError(LLMLabError, FileNotFoundError):
    """The model setting names nothing that can be loaded."""


class ModelTooLargeError(LLMLabError, MemoryError):
    """The model would not fit in the memory this machine has free."""


class PortInUseError(LLMLabError, OSError):
    """The port asked for is taken, often by a server an earlier run left behind."""


class ServerStartError(LLMLabError, RuntimeError):
    """A server process exited or never became healthy; the message ends with its log.

    ``returncode`` is the process's exit status when it exited (negative: the signal that
    ended it, such as -11 for a crash), None when it was still running.
    """

    returncode: int | None = None
