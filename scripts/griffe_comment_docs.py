"""A griffe extension (mkdocs.yml): ``#:`` comments above an attribute become its docstring.

sse-llm documents module constants and type aliases (``EndReason``, ``FinishReason`` ...) the
way Sphinx's autodoc reads them, with ``#:`` comment lines just above the assignment; griffe
only reads a string literal below it. Such an attribute without a docstring gets the comment
text, so the API reference shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe


class CommentDocs(griffe.Extension):
    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None or attr.lineno is None:
            return
        filepath = attr.filepath
        if not isinstance(filepath, Path) or filepath not in attr.lines_collection:
            return
        lines = attr.lines_collection[filepath]
        comment: list[str] = []
        index = attr.lineno - 2  # the line above the assignment (lineno counts from 1)
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            comment.append(lines[index].lstrip()[2:].removeprefix(" "))
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(
                "\n".join(reversed(comment)), lineno=index + 2, parent=attr
            )
