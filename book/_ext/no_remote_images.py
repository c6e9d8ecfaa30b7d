"""Put each remote image (the Colab and Binder badges atop every notebook) as its alt text.

The links stay; only the pictures would have been fetched from the network when a reader opens
the page, and the site loads nothing from outside itself.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes


def _text_for_remote_images(app: Any, doctree: nodes.document, docname: str) -> None:
    for image in list(doctree.findall(nodes.image)):
        if image["uri"].startswith(("http://", "https://", "//")):
            image.replace_self(nodes.Text(image.get("alt", "")))


def setup(app: Any) -> dict[str, bool]:
    app.connect("doctree-resolved", _text_for_remote_images)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
