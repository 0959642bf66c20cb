"""
A fixed-rate HTTP/1.1 load generator (wrk2 is not packaged):

    python -m benchmarks.http_loadgen PORT RATE SECONDS [CONNECTIONS]

Requests are scheduled at RATE per second over CONNECTIONS keep-alive
connections; latency is measured from the scheduled send time (so queueing
behind a slow response counts).  Prints "p50_ms p99_ms count errors".
"""

from __future__ import annotations

import asyncio
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def worker(port: int, interval: float, start: float, end: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    due = start
    while due < end:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            errors += 1
        out.append(time.perf_counter() - due)
        due += interval
    writer.close()
    return errors


async def run(port: int, rate: float, seconds: float, conns: int) -> None:
    out: list[float] = []
    interval = conns / rate
    start = time.perf_counter() + 0.2
    tasks = [
        worker(port, interval, start + i * interval / conns, start + seconds, out)
        for i in range(conns)
    ]
    errors = sum(await asyncio.gather(*tasks))
    out.sort()
    p50 = out[len(out) // 2] * 1000
    p99 = out[int(len(out) * 0.99)] * 1000
    print(f"{p50:.3f} {p99:.3f} {len(out)} {errors}")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        run(int(args[0]), float(args[1]), float(args[2]), int(args[3]) if len(args) > 3 else 8)
    )
