"""Run one service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from .common import Service

__all__ = ["serve"]

log = logging.getLogger("orderstack")


async def serve(service: Service, host: str, port: int) -> None:
    """Listen on host:port (access log off: no per-request logging) until a stop signal."""
    runner = web.AppRunner(service.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        # Start-up objects live for the whole run: keep the collector from rescanning them.
        gc.freeze()
        log.info("%s listening on http://%s:%d", service.name, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("%s stopping", service.name)
    finally:
        await runner.cleanup()
