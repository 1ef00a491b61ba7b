"""An in-process bus proxy on private ipc:// endpoints, for tests that drive the bus directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq

from shared.bus import Proxy
from tests.support.config import ipc_endpoint


@contextmanager
def proxied(tmp: Path, hwm: int) -> Iterator[tuple[zmq.Context[zmq.Socket[bytes]], str, str]]:
    """A fresh context and a running Proxy: yields (context, xsub, xpub). The caller closes its
    own sockets inside the block; the proxy is stopped and the context destroyed after it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    xsub, xpub = ipc_endpoint(tmp, "xsub"), ipc_endpoint(tmp, "xpub")
    proxy = Proxy(ctx, xsub, xpub, hwm=hwm)
    proxy.start()
    try:
        yield ctx, xsub, xpub
    finally:
        proxy.stop()
        ctx.destroy(0)
