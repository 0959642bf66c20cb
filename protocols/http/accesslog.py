# -*- test-case-name: tests.test_http_accesslog -*-
"""
C{httpAccessLog}: one line per response in the common log format, written
through L{twisted.python.logfile} with Linkerd's roll policy keys
(C{httpAccessLogRollPolicy}, C{httpAccessLogAppend},
C{httpAccessLogRotateCount}).
"""

from __future__ import annotations

import os
import re
import time

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.python.logfile import DailyLogFile, LogFile

from protocols.http.message import BodyStream, Request, Response

_SIZE = re.compile(r"^(\d+)\.(bytes|kilobytes|megabytes|gigabytes)$")
_DATED = re.compile(r"^(\d+)_(\d+)_(\d+)$")
_UNITS = {"bytes": 1, "kilobytes": 1024, "megabytes": 1024**2, "gigabytes": 1024**3}


@attrs.frozen
class AccessLogConfig:
    """
    @ivar rollPolicy: C{never}, C{daily}, or a size such as C{100.megabytes}.
    @ivar rotateCount: how many rotated files are kept (daily or by size);
        C{-1} keeps them all.
    """

    path: str
    rollPolicy: str = "never"
    append: bool = True
    rotateCount: int = -1


def rollPolicyError(policy: str) -> str | None:
    """Why C{policy} is not a roll policy, or C{None}."""
    if policy in ("never", "daily") or _SIZE.match(policy):
        return None
    return f"unknown roll policy {policy!r}: use never, daily or a size like 100.megabytes"


class _DailyLogFile(DailyLogFile):
    """
    Twisted's daily log file (rotated files end in C{.YEAR_MONTH_DAY}),
    keeping only the C{keep} most recent rotated files.
    """

    def __init__(self, name: str, directory: str, keep: int) -> None:
        self.keep = keep
        super().__init__(name, directory)

    def rotate(self) -> None:
        super().rotate()
        prefix = os.path.basename(self.path) + "."
        dated = []
        for entry in os.listdir(self.directory):
            match = _DATED.match(entry[len(prefix) :]) if entry.startswith(prefix) else None
            if match is not None:
                dated.append((tuple(int(part) for part in match.groups()), entry))
        dated.sort()
        for _, entry in dated[: max(0, len(dated) - self.keep)]:
            os.remove(os.path.join(self.directory, entry))


class AccessLog:
    """Writes one common-log-format line per response (an C{AccessLogger})."""

    def __init__(self, config: AccessLogConfig) -> None:
        directory, name = os.path.split(os.path.abspath(config.path))
        if not config.append and os.path.exists(config.path):
            open(config.path, "w").close()
        size = _SIZE.match(config.rollPolicy)
        self.file: LogFile | DailyLogFile
        if config.rollPolicy == "daily":
            if config.rotateCount >= 0:
                self.file = _DailyLogFile(name, directory, config.rotateCount)
            else:
                self.file = DailyLogFile(name, directory)
        elif size is not None:
            self.file = LogFile(
                name,
                directory,
                rotateLength=int(size.group(1)) * _UNITS[size.group(2)],
                maxRotatedFiles=config.rotateCount if config.rotateCount >= 0 else None,
            )
        else:
            self.file = LogFile(name, directory, rotateLength=None)

    def __call__(self, request: Request, response: Response, server: object) -> None:
        peer = getattr(server, "peer", None)
        host = peer.host if isinstance(peer, IPv4Address | IPv6Address) else "-"
        body = response.body
        if isinstance(body, BodyStream):
            size = str(body.length) if body.length is not None else "-"
        else:
            size = str(len(body))
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        line = '{} - - [{}] "{} {} HTTP/{}" {} {}\n'.format(
            host,
            stamp,
            request.method.decode("latin-1"),
            request.uri.decode("latin-1"),
            request.version.decode("latin-1"),
            response.status,
            size,
        )
        self.file.write(line)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
