"""``python -m llmlab.webui --base-url URL``: serve the chat page for the server at URL.

python -m llmlab.webui --base-url http://127.0.0.1:8080 --port 7860 --auth student:secret
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from llmlab.servers import LOCALHOST


def parse_auth(value: str) -> tuple[str, str]:
    """``user:password`` as Gradio's ``auth`` pair (the password may itself contain ``:``)."""
    user, colon, password = value.partition(":")
    if not (user and colon and password):
        raise argparse.ArgumentTypeError(
            f"expected USER:PASSWORD, for example student:secret, not {value!r}"
        )
    return user, password


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m llmlab.webui",
        description="A chat page in the browser for an OpenAI-compatible server.",
    )
    parser.add_argument(
        "--base-url",
        required=True,
        help="the server's address, with or without /v1, e.g. http://127.0.0.1:8080",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LLMLAB_API_KEY"),
        help="the server's API key (default: $LLMLAB_API_KEY, else none)",
    )
    parser.add_argument("--model", help="the model to select first (default: the server's first)")
    parser.add_argument(
        "--host", default=LOCALHOST, help="address to bind (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, help="port to bind (default: Gradio's, from 7860)")
    parser.add_argument(
        "--auth",
        type=parse_auth,
        default=os.environ.get("LLMLAB_WEBUI_AUTH"),
        metavar="USER:PASSWORD",
        help="ask for this login first (default: $LLMLAB_WEBUI_AUTH, else none)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also make a public gradio.live link (internet)"
    )
    parser.add_argument(
        "--root-path",
        help="the path a proxy serves the page under, e.g. /user/NAME/proxy/7860 on JupyterHub",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from llmlab.webui.app import launch_chat_app  # imports Gradio: seconds, so after the checks

    launch_chat_app(
        args.base_url,
        api_key=args.api_key,
        model=args.model,
        host=args.host,
        port=args.port,
        auth=args.auth,
        share=args.share,
        root_path=args.root_path,
    )


if __name__ == "__main__":
    main()
