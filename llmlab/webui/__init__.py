"""A chat page in the browser for any OpenAI-compatible server (chapter 07).

``python -m llmlab.webui --base-url http://127.0.0.1:8080`` serves it; ``chat_app_server`` starts
that command as a ``Server`` the notebook can stop like every other server in the course.
"""

from llmlab.webui.app import build_chat_app, chat_app_server, launch_chat_app

__all__ = ["build_chat_app", "chat_app_server", "launch_chat_app"]
