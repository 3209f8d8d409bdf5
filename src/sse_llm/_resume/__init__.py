"""Resumable streams, one private module per part; :mod:`sse_llm.resume` is the public
surface."""

from .hub import StreamHub
from .memory import MemoryStore
from .response import ResumeStream
from .store import StoredEvents, StreamStore

__all__ = ["MemoryStore", "ResumeStream", "StoredEvents", "StreamHub", "StreamStore"]
