"""`python -m tests.chaos.worker_main`: the real worker plus the chaos drill journey.

The worker `journeyman worker` runs (`worker.wired_worker`: SMTP, the activities, every
catalog journey) with `ChaosDrill` registered too, configured like production from the
`JOURNEYMAN_*` environment, poller watchdog included. The chaos tests run it as a child
process and SIGKILL it; it prints READY once its worker is polling, so a kill timer can start
from there.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from journeyman.settings import Settings
from journeyman.temporal import connect_when_ready
from journeyman.worker_watchdog import exit_stalled, watchdog_for
from persistence import create_database
from tests.chaos.journey import ChaosDrill
from worker import wired_worker

READY = "READY"


async def main() -> None:
    # Warnings and errors (poll failures, takeovers of dead attempts' sends) to stderr, which
    # the tests keep in worker.log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    client = await connect_when_ready(settings)
    database = create_database(settings.database_url_resolved)
    async with httpx.AsyncClient() as http:
        worker = wired_worker(client, settings, database, http, extra_workflows=[ChaosDrill])
        running = asyncio.create_task(worker.run())
        # Give run() a moment to validate and start its pollers before announcing.
        await asyncio.sleep(0.2)
        if not running.done():
            print(READY, flush=True)
        # The production watchdog (`worker.run_worker`'s): exits if this worker stops polling.
        watchdog = watchdog_for(client, settings, [worker])
        if watchdog is None:
            await running
            return
        watching = asyncio.create_task(watchdog.run())
        await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            await exit_stalled(watching.result(), [worker], patience=15)
        watching.cancel()
        await running


if __name__ == "__main__":
    asyncio.run(main())
