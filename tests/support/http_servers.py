"""A local HTTP server for a test's lifetime: started on a free loopback port in a thread, shut down after."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def serving(server: http.server.HTTPServer, run: Callable[[], None] | None = None) -> Iterator[str]:
    """``server``'s base URL while ``run`` (default: ``server.serve_forever``) runs in a thread."""
    thread = threading.Thread(target=run or server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
