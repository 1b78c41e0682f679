#!/usr/bin/env python3
"""How much a flood of large messages grows a Parley server's memory.

GUESTS anonymous guests, each alone in a room of its own on the original
protocol, each post MESSAGES messages of 16 000 bytes (4 000 four-byte
characters) while reading what their room sends back. The server's resident
memory (VmRSS of --server-pid) is read before, at the end of the flood and
after a settling pause, and printed as JSON. Needs `pip install websockets`;
run the server with PARLEY_LIMITS=off (the flood is the point, not the rate).

    PARLEY_LIMITS=off target/release/parley &
    loadtest/memory_flood.py --url ws://127.0.0.1:8000 --server-pid $!
"""

import argparse
import asyncio
import json

import websockets

TEXT = "\U0001d11e" * 4000  # 16 000 bytes of UTF-8


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def guest(url: str, n: int, messages: int) -> int:
    received = 0
    async with websockets.connect(f"{url}/ws/chat/flood-{n}/guest-{n}", max_size=None) as ws:

        async def read():
            nonlocal received
            async for _ in ws:
                received += 1

        reader = asyncio.create_task(read())
        for _ in range(messages):
            await ws.send(TEXT)
        await asyncio.sleep(2)
        reader.cancel()
    return received


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="ws://127.0.0.1:8000")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--guests", type=int, default=40)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    before = rss_kib(args.server_pid)
    received = await asyncio.gather(*(guest(args.url, n, args.messages) for n in range(args.guests)))
    during = rss_kib(args.server_pid)
    await asyncio.sleep(5)
    after = rss_kib(args.server_pid)
    print(json.dumps({
        "guests": args.guests,
        "messages_each": args.messages,
        "frames_received": sum(received),
        "rss_before_mib": round(before / 1024, 1),
        "rss_end_of_flood_mib": round(during / 1024, 1),
        "rss_settled_mib": round(after / 1024, 1),
        "growth_mib": round((after - before) / 1024, 1),
    }))


asyncio.run(main())
