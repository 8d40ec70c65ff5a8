"""Requests written byte by byte, as no HTTP client library would let us write them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers["content-type"].startswith("application/json"), self
        return orjson.loads(self.body)


async def send_raw(port: int, method: str, path: str, headers: list[bytes], body: bytes = b"") -> RawReply:
    """One request written byte by byte, as no HTTP client library would let us write it."""
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers]
    head += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)  # the server closes when done
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    names_values = (line.split(b":", 1) for line in header_block.split(b"\r\n") if line)
    return RawReply(
        int(status_line.split()[1]),
        {name.decode().strip().lower(): value.decode().strip() for name, value in names_values},
        content,
    )
