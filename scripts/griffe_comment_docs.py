"""Griffe extensions (mkdocs.yml) that show sse-llm's Sphinx-style docstrings in the API
reference, which mkdocstrings renders as Markdown.

- ``#:`` comments above an attribute become its docstring: sse-llm documents module constants
  and type aliases (``EndReason``, ``FinishReason`` ...) the way Sphinx's autodoc reads them,
  with ``#:`` comment lines just above the assignment; griffe only reads a string literal
  below it. Such an attribute without a docstring gets the comment text.
- Sphinx roles (``:class:`~sse_llm.StreamResult```, ``:meth:`X <a.b.X>```) become code spans
  (```StreamResult```): Markdown would show them as raw text. The docstrings keep the roles
  for readers of the source and of ``help()``.
"""

from __future__ import annotations

import re
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


# :class:`~a.b.C`, :meth:`shown <a.b.C.m>`, :py:func:`f` ...
_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)\s*(?:<([^`>]+)>)?`")


def _code_span(match: re.Match[str]) -> str:
    tilde, text, target = match.groups()
    shown = text.strip() if target else (text.rsplit(".", 1)[-1] if tilde else text)
    return f"`{shown.strip()}`"


def without_roles(text: str) -> str:
    """``text`` with every Sphinx role as a Markdown code span."""
    return _ROLE.sub(_code_span, text)


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = without_roles(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # The top package is loaded last and is not an on_object call of its own.
        if pkg.docstring is not None:
            pkg.docstring.value = without_roles(pkg.docstring.value)
