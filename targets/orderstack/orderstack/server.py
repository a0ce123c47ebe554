"""Run one service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from .common import Service
from .httpserver import HttpServer, start_server

__all__ = ["serve", "start_service", "stop_service"]

log = logging.getLogger("orderstack")


async def start_service(service: Service, host: str, port: int) -> HttpServer:
    """Open the service's resources, then listen on host:port (no per-request logging)."""
    await service.start()
    try:
        return await start_server(service.all_routes(), host, port)
    except BaseException:
        await service.stop()
        raise


async def stop_service(service: Service, server: HttpServer) -> None:
    """Stop listening, drop the connections, release the service's resources."""
    try:
        await server.close()
    finally:
        await service.stop()


async def serve(service: Service, host: str, port: int) -> None:
    """Listen on host:port until a stop signal."""
    server = await start_service(service, host, port)
    try:
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
        await stop_service(service, server)
