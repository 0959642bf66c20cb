"""
The HTTP data path with a fixed destination, for benchmarks/http.py:

    python -m benchmarks.http_proxy LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT

Server, handler (informational headers), keep-alive pool; no router core.
It runs on the router's reactor (linkrouter._reactor).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from linkrouter import _reactor

    _reactor.install()  # the router's own reactor, so that the rows compare
    from twisted.internet import reactor

    from protocols.http.client import HTTPPool
    from protocols.http.proxy import forwardTo, serve

    listen, host, port = int(argv[0]), argv[1], int(argv[2])
    pool = HTTPPool(reactor, reactor, host, port)  # type: ignore[arg-type]
    serve(reactor, forwardTo(pool), port=listen)  # type: ignore[arg-type]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
