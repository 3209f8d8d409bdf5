"""The shutdown test app, in a process that froze its objects itself (as a pre-fork server
does before forking its workers, to keep memory pages shared): GracefulShutdown must leave
that freeze alone."""

from __future__ import annotations

import gc

from sse_llm import GracefulShutdown
from tests.support.shutdown.asgi_app import plain

gc.freeze()
app = GracefulShutdown(plain, drain_timeout=0.5)
