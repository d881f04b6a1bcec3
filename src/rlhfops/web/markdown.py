"""Model output as safe HTML: Markdown and code rendered, nothing else.

markdown-it-py (already installed with ``rich``) in its CommonMark preset with raw HTML **off**: any
``<tag>`` in a reply is escaped and shows as text, so no element, attribute or script can come from
model output. Links and images are turned off as well (a reply cannot make the rater's browser fetch or
open anything; the text shows literally). The Content-Security-Policy still forbids inline scripts.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup


@lru_cache(maxsize=1)
def _parser():

    return MarkdownIt("commonmark", {"html": False}).disable(["image", "link", "autolink"])


def render_markdown(text: str | None) -> Markup:
    """``text`` (untrusted) as sanitised HTML: paragraphs, emphasis, lists, headings, code blocks."""
    return Markup(_parser().render(text or ""))
