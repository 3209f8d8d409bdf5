"""Missing optional dependencies: an ``ImportError`` that names the extra to install."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["raise_missing_extra"]


def raise_missing_extra(
    exc: ModuleNotFoundError, module: str, extra: str, *packages: str
) -> NoReturn:
    """Re-raise ``exc``, from importing ``module``, as an error that says what to install.

    Args:
        exc: what the import raised.
        module: the sse-llm module being imported (``"sse_llm.html"``).
        extra: the extra that brings the dependency (``"html"``).
        *packages: the top-level modules that extra installs (``"jinja2"``, ``"nh3"`` ...).

    Raises:
        ImportError: ``exc`` is about one of ``packages``: the message says
            ``pip install 'sse-llm[<extra>]'`` (``exc`` is its cause).
        ModuleNotFoundError: ``exc`` itself, about a module no extra provides.
    """
    missing = (exc.name or "").partition(".")[0]
    if missing not in packages:
        raise exc
    raise ImportError(
        f"{module} needs {missing!r}, which is not installed: pip install 'sse-llm[{extra}]'",
        name=exc.name,
    ) from exc
