#!/usr/bin/env python3
"""asyncio_echo -- the Python asyncio Streams peer of rill's examples/echo_server.

    asyncio_echo.py [--host H] [--port P] [--mode chunk|line]

Prints `Serving on ADDR` (port 0 picks a free one), then echoes with the Streams
API: chunk, `reader.read(65536)` / `write` / `drain`; line, `readline` / `write` /
`drain`. SIGINT or SIGTERM: exit 0.
"""
import argparse
import asyncio
import resource
import signal
import sys


async def echo_chunk(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def echo_line(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except (ConnectionError, OSError, ValueError):
        pass
    finally:
        writer.close()


async def main(args):
    handler = echo_line if args.mode == "line" else echo_chunk
    server = await asyncio.start_server(handler, args.host, args.port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"Serving on {host}:{port}", flush=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--mode", choices=("chunk", "line"), default="chunk")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(a))
    sys.exit(0)
