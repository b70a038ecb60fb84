"""Run as a script: record a session, print the last flushed sample's ts, then wait to be killed.

The crash-recovery test SIGKILLs this process, so nothing gets to close the session."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from treadctl.store import Sample, SessionStore

SESSION_ID = "20261124T101500-dead"
STARTED = 1_795_515_300.0


async def main(path: Path, samples: int) -> None:
    store = SessionStore(path, commit_interval_s=0.2)
    await store.start()
    store.session_started(
        SESSION_ID,
        device_id="treadmill",
        driver="sim",
        program="chang2021-stroke",
        parameters={"comfortable_backward_kmh": 1.2},
        plan=None,
        planned_s=1800.0,
        started=STARTED,
    )
    store.phase_started(
        SESSION_ID,
        index=0,
        label="backward walking",
        walk="backward",
        belt="reverse",
        speed_kmh=1.2,
        incline_pct=0.0,
        planned_s=1800.0,
        started=STARTED,
    )
    last = STARTED
    for i in range(samples):
        last = STARTED + 0.5 * i
        store.sample(
            SESSION_ID,
            Sample(last, 0.5 * i, 1.2, "reverse", "backward", 0.0, 1.2, i / 6, 95, 0, "running"),
        )
    await store.wait_flushed()
    print(f"flushed {last!r}", flush=True)
    await asyncio.sleep(60)  # the test kills us here


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
