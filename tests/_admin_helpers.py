"""
Drive an admin C{Site} in memory: HTTP/1.0 over a L{StringTransport}, time
on a L{MemoryReactorClock}.
"""

import json

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport

from linkrouter.admin import makeAdminSite
from linkrouter.telemetry import MetricsRegistry


@attrs.frozen
class Response:
    code: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self):
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


class AdminHarness:
    """
    An admin site on a fake clock, with a cooperator on the same clock.
    """

    def __init__(self, **kwargs):
        self.clock = kwargs.pop("clock", None) or MemoryReactorClock()
        self.registry = kwargs.pop("registry", None) or MetricsRegistry(self.clock)
        self.cooperator = Cooperator(scheduler=lambda f: self.clock.callLater(0, f))
        self.site = makeAdminSite(self.registry, self.clock, cooperator=self.cooperator, **kwargs)

    def pump(self, seconds=0.0):
        for _ in range(200):
            self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
            for _ in range(20):
                self.clock.advance(0)

    def start(self, method, path, body=b"", headers=()):
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        head = [f"{method} {path} HTTP/1.0", "Host: admin.test"]
        head += [f"{k}: {v}" for k, v in headers]
        if body:
            head.append(f"Content-Length: {len(body)}")
        protocol.dataReceived("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        return protocol, transport

    @staticmethod
    def parse(raw):
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        code = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Response(code, headers, body)

    def request(self, method, path, body=b"", headers=(), wait=0.0):
        _, transport = self.start(method, path, body, headers)
        self.pump(wait)
        return self.parse(transport.value())

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)
