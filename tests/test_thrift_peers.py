"""
Real Thrift peers for the thrift tests: thriftpy2 servers (threads, on
loopback, port 0) and helpers to run thriftpy2 clients off the reactor.
"""

from __future__ import annotations

import io
import socket
import threading
from typing import Any

import thriftpy2
from thriftpy2.protocol import (
    TBinaryProtocolFactory,
    TCompactProtocolFactory,
    TMultiplexedProtocolFactory,
)
from thriftpy2.rpc import make_client
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TMultiplexedProcessor, TProcessor
from thriftpy2.transport import (
    TBufferedTransportFactory,
    TFramedTransportFactory,
    TServerSocket,
)

IDL = """
exception Oops { 1: string why }
service Echo {
  string echo(1: string msg),
  i32 add(1: i32 a, 2: i32 b),
  oneway void note(1: string msg),
  void boom(1: string why) throws (1: Oops oops),
}
service Calc {
  i32 add(1: i32 a, 2: i32 b),
}
"""

echo_thrift: Any = thriftpy2.load_fp(io.StringIO(IDL), module_name="echo_thrift")


class EchoHandler:
    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.notes: list[str] = []

    def echo(self, msg: str) -> str:
        return self.tag + msg

    def add(self, a: int, b: int) -> int:
        return a + b

    def note(self, msg: str) -> None:
        self.notes.append(msg)

    def boom(self, why: str) -> None:
        raise echo_thrift.Oops(why=why)


class CalcHandler:
    def add(self, a: int, b: int) -> int:
        return a + b + 1000


def factories(framed: bool, compact: bool, strict: bool = True) -> tuple[Any, Any]:
    proto = (
        TCompactProtocolFactory()
        if compact
        else TBinaryProtocolFactory(strict_read=False, strict_write=strict)
    )
    trans = TFramedTransportFactory() if framed else TBufferedTransportFactory()
    return proto, trans


class Backend:
    """A thriftpy2 threaded server on 127.0.0.1, port 0."""

    def __init__(
        self,
        framed: bool = True,
        compact: bool = False,
        handler: Any = None,
        multiplexed: bool = False,
    ) -> None:
        proto, trans = factories(framed, compact)
        self.handler = handler if handler is not None else EchoHandler()
        processor: Any = TProcessor(echo_thrift.Echo, self.handler)
        if multiplexed:
            processor = TMultiplexedProcessor()
            processor.register_processor("Echo", TProcessor(echo_thrift.Echo, self.handler))
            processor.register_processor("Calc", TProcessor(echo_thrift.Calc, CalcHandler()))
        self.server = TThreadedServer(
            processor,
            TServerSocket(host="127.0.0.1", port=0, client_timeout=None),
            iprot_factory=proto,
            itrans_factory=trans,
            daemon=True,
        )
        self.server.trans.listen()
        self.port: int = self.server.trans.sock.getsockname()[1]  # type: ignore[union-attr]
        self.server.trans.listen = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.close()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.thread.join(5)
        self.server.trans.close()


def client(
    port: int,
    framed: bool = True,
    compact: bool = False,
    strict: bool = True,
    service: str | None = None,
) -> Any:
    """A blocking thriftpy2 client (use it from a thread)."""
    proto, trans = factories(framed, compact, strict)
    svc = echo_thrift.Echo
    if service is not None:
        proto = TMultiplexedProtocolFactory(proto, service)
        svc = getattr(echo_thrift, service)
    return make_client(
        svc, "127.0.0.1", port, proto_factory=proto, trans_factory=trans, timeout=10000
    )


def freePort() -> int:
    """A loopback port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port
