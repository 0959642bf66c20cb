# -*- test-case-name: tests.test_cli -*-
"""
The C{linkrouter} console script: C{check}, C{run}, C{delegate} and
C{plugins}.

Mistakes (a bad file, a bad dtab, a duplicate plugin) are one line on
standard error and a non-zero exit status, never a traceback: 1 for an
invalid configuration, 2 for anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from twisted.python import usage

from linkrouter._plugins import DuplicatePluginError, PluginRegistry
from linkrouter.config import ConfigError
from linkrouter.naming import ParseError

EXIT_INVALID = 1
EXIT_ERROR = 2


class CommandError(Exception):
    """A mistake on the command line: one line, exit status 2."""


def _registry() -> PluginRegistry:
    try:
        return PluginRegistry.discover()
    except DuplicatePluginError as e:
        raise CommandError(str(e)) from None


def check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from linkrouter.config import loadLinkerConfig

    registry = _registry()
    status = 0
    for source in args.config:
        try:
            loadLinkerConfig(source, registry)
        except ConfigError as e:
            err.write(f"{e}\n")
            status = EXIT_INVALID
        else:
            out.write(f"{source}: ok\n")
    return status


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from twisted.scripts.twistd import run as twistd

    argv = ["twistd", "--nodaemon", "--pidfile=", "linkrouter"]
    if args.config is not None:
        argv += ["--config", args.config]
    saved, sys.argv = sys.argv, argv
    try:
        twistd()
    finally:
        sys.argv = saved
    return 0


def delegate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from linkrouter.naming.delegate import explain
    from linkrouter.naming.interpreter import ConfiguredNamersInterpreter
    from linkrouter.tap import readConfig

    dtab = args.dtab
    namers: Any = ()
    if args.config is not None:
        from linkrouter.service import LinkerService, StartupError

        config = readConfig(args.config, _registry())
        routers = [r for r in config.routers if args.router in (None, r.label)]
        if not routers:
            raise CommandError(f"no router labelled {args.router!r} in {args.config}")
        dtab = f"{routers[0].dtab.show};{dtab}"
        try:
            namers = LinkerService.build(config, reactor, _registry()).namers
        except StartupError as e:
            raise CommandError(str(e)) from None
    interpreter = ConfiguredNamersInterpreter(namers)
    result: list[Any] = []

    def done(value: Any) -> None:
        result.append(value)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    explained: Deferred[Any] = explain(dtab, args.path, interpreter)
    explained.addTimeout(args.timeout, reactor)
    explained.addBoth(done)
    if not result:
        reactor.run()  # type: ignore[attr-defined]
    value = result[0]
    if not isinstance(value, dict):
        raise CommandError(f"delegation failed: {value.getErrorMessage()}")
    out.write(json.dumps(value, indent=2) + "\n")
    return 0


def plugins(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    current = None
    for iface, protocol, kind, _ in _registry().everything():
        if iface is not current:
            current = iface
            out.write(f"{iface.__name__}:\n")
        out.write(f"  {kind}" + (f" (protocol {protocol})" if protocol else "") + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="linkrouter", description="A Linkerd 1.x compatible RPC router."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser("check", help="validate configuration files and exit")
    sub.add_argument("config", nargs="+", metavar="CONFIG", help="a file, or - for stdin")
    sub.set_defaults(func=check)

    sub = commands.add_parser("run", help="run the router (same as twistd -n linkrouter)")
    sub.add_argument("-c", "--config", help="configuration file (default: the embedded one)")
    sub.set_defaults(func=run)

    sub = commands.add_parser("delegate", help="explain how a path is bound (JSON)")
    sub.add_argument("-c", "--config", help="use this configuration's namers and dtab")
    sub.add_argument("--router", help="the router whose dtab to use (default: the first)")
    sub.add_argument("--dtab", default="", help="a dtab to add (default: none)")
    sub.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")
    sub.add_argument("path", metavar="PATH")
    sub.set_defaults(func=delegate)

    sub = commands.add_parser("plugins", help="list the installed plugin kinds")
    sub.set_defaults(func=plugins)
    return top


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """
    Run the console script; return the exit status.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        status: int = args.func(args, out, err)
    except ConfigError as e:
        err.write(f"{e}\n")
        return EXIT_INVALID
    except (CommandError, ParseError, usage.UsageError) as e:
        err.write(f"linkrouter {args.command}: {e}\n")
        return EXIT_ERROR
    return status
