#!/usr/bin/env python3
"""The held-connection attack of `.ci/soak`: CONNECTIONS connections at once, each sending the
headers of `POST PATH` (an XCom) with `Transfer-Encoding: chunked` and then nothing
more, or one chunk and then nothing (a stalled body); half with no token, half with a valid
one (so the request reaches the handler, which waits on the body). Whenever the server answers
or closes one, it is opened again at once, until SECONDS have passed.

Prints one JSON line: connections opened, the statuses the server answered them with, the
ones it closed without an answer, connect errors, how many were held open at once (sampled
every 100 ms after the first second), per kind the longest time the server let a connection
live, and the CPU time the attacker itself used.

Usage: held-connections.py HOST:PORT CONNECTIONS SECONDS TOKEN [PATH] [-v]
  PATH: the XCom to post to (default /execution/xcoms/d/r/t/k; with strict ownership a token
  reaches the handler only for its own task's XCom); -v: the samples on stderr
"""

import asyncio
import json
import sys
import time
from collections import Counter

KINDS = ("anonymous-headers", "anonymous-stalled", "token-headers", "token-stalled")


async def hold(kind, host, port, token, path, deadline, stats):
    auth = f"Authorization: Bearer {token}\r\n" if kind.startswith("token") else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{auth}\r\n"
    ).encode()
    if kind.endswith("stalled"):
        head += b"1\r\n[\r\n"
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.05)
            continue
        opened = time.monotonic()
        stats["opened"] += 1
        stats["open"] += 1
        answer = b""
        try:
            writer.write(head)
            await writer.drain()
            # Read until the server closes the connection (or the attack ends).
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                chunk = await asyncio.wait_for(reader.read(65536), timeout=left)
                if not chunk:
                    break
                answer += chunk
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            stats["open"] -= 1
            writer.close()
        if time.monotonic() >= deadline:
            stats["held_at_end"] += 1
            break
        held = time.monotonic() - opened
        stats["longest_" + kind] = max(stats["longest_" + kind], round(held, 2))
        if answer.startswith(b"HTTP/1.1 "):
            stats["status_" + answer[9:12].decode()] += 1
        else:
            stats["closed_without_answer"] += 1


async def main():
    addr, connections, seconds, token = sys.argv[1:5]
    path = next((a for a in sys.argv[5:] if a.startswith("/")), "/execution/xcoms/d/r/t/k")
    host, port = addr.rsplit(":", 1)
    connections, seconds = int(connections), float(seconds)
    stats = Counter()
    start = time.monotonic()
    deadline = start + seconds
    tasks = [
        asyncio.create_task(
            hold(KINDS[i % len(KINDS)], host, int(port), token, path, deadline, stats)
        )
        for i in range(connections)
    ]
    samples = []
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if time.monotonic() - start >= 1:
            samples.append(stats["open"])
    await asyncio.gather(*tasks)
    out = {k: v for k, v in sorted(stats.items()) if k != "open"}
    out["held_min"] = min(samples, default=0)
    out["held_avg"] = round(sum(samples) / max(len(samples), 1))
    out["attacker_cpu_s"] = round(time.process_time(), 1)
    if "-v" in sys.argv:
        print(samples, file=sys.stderr)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
