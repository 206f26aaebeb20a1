"""The sample services' listening socket: what asyncio does with the connections it accepts."""

from __future__ import annotations

import asyncio
import socket

from services.common.web import bind_socket


def test_accepted_connections_have_nagle_off() -> None:
    # GIVEN the services' listening socket served by asyncio (as uvicorn does)
    async def main() -> int:
        seen: asyncio.Queue[int] = asyncio.Queue()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            await seen.put(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = bind_socket("127.0.0.1", 0)
        server = await asyncio.start_server(on_client, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(seen.get(), timeout=10)
            writer.close()
        return nodelay

    # THEN each accepted connection has TCP_NODELAY set: with Nagle on, every keep-alive
    # response after the first waited ~40 ms for the client's delayed ACK
    assert asyncio.run(main()) != 0
