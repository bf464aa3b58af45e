#!/usr/bin/env python3
"""A TCP relay that caps each connection's downstream bandwidth, standing in for S3's
per-connection throughput limit in front of moto.

Usage: throttle_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT BYTES_PER_SECOND
Prints "throttle listening on 127.0.0.1:<port>" once ready. Each accepted connection gets its own
token bucket for the bytes flowing back to the client; requests flow upstream unthrottled.
"""
import asyncio
import sys
import time

listen_port, target_host, target_port, rate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


async def pump(reader, writer, throttled):
    started = time.monotonic()
    sent = 0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if throttled:
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_reader, client_writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, upstream_writer, False), pump(upstream_reader, client_writer, True))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    port = server.sockets[0].getsockname()[1]
    print(f"throttle listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
