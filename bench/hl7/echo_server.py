"""The baseline: python-hl7's asyncio MLLP server answering each message with
the library's own ACK (``Message.create_ack``), storing nothing.

    python -m bench.hl7.echo_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import hl7
from hl7.mllp import start_hl7_server


async def _answer(reader: Any, writer: Any) -> None:
    try:
        while True:
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, hl7.ParseException):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await start_hl7_server(_answer, "127.0.0.1", port)
    print(f"echo server on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
