"""Independent D-Bus peers for the velib tests (python3-dbus programs run as subprocesses)."""
from __future__ import annotations

import asyncio
import json
import os

PEERS_DIR = os.path.dirname(os.path.abspath(__file__))
SYSTEM_PYTHON = "/usr/bin/python3"


class Peer:
    """A python3-dbus peer program in a subprocess, driven by JSON lines on stdin."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    @classmethod
    async def start(cls, script: str, *args: str) -> "Peer":
        process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, os.path.join(PEERS_DIR, script), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
        peer = cls(process)
        await peer.expect("ready")
        return peer

    async def expect(self, word: str) -> None:
        line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        if line.decode().strip() != word:
            err = b""
            if self.process.returncode is not None or not line:
                err = await self.process.stderr.read()
            raise RuntimeError(f"peer said {line!r}, expected {word!r}: {err.decode()}")

    async def send(self, command: dict) -> None:
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        await self.expect("ok")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def start_busitem_service(name: str, items: dict, *extra: str) -> Peer:
    return await Peer.start("busitem_service.py", name, json.dumps(items), *extra)


__all__ = ["Peer", "start_busitem_service", "SYSTEM_PYTHON", "PEERS_DIR"]
