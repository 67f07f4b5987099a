"""Writing a benchmark's report: its Markdown where the docs include it, its numbers beside it."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["writeMarkdownAndJson"]


def writeMarkdownAndJson(document: str | Path, text: str, results: dict) -> str:
    """Write ``text`` to ``document`` and ``results`` to the same name with ``.json``; return ``text``.

    Parameters
    ----------
    document : `str` or `Path`
        The Markdown file (its folder is made if need be).
    text : `str`
        The Markdown.
    results : `dict`
        The numbers behind it (JSON-serialisable).
    """
    document = Path(document)
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(text)
    document.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    return text
