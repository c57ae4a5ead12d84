"""gis_platform.singleflight: one run per key for concurrent callers (API keys, cold tiles)."""

from __future__ import annotations

import asyncio

import pytest

from gis_platform.singleflight import SingleFlight


def test_concurrent_callers_share_one_run_and_its_result():
    calls = []

    async def work():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "tile"

    async def main():
        flight = SingleFlight()
        got = await asyncio.gather(*(flight.run("k", work) for _ in range(10)),
                                   flight.run("other", work))
        assert len(flight) == 0                      # nothing kept afterwards
        return got

    assert asyncio.run(main()) == ["tile"] * 11
    assert len(calls) == 2                           # one per key
    # a later call runs again: results are not cached
    asyncio.run(SingleFlight().run("k", work))
    assert len(calls) == 3


def test_an_error_reaches_every_waiter_from_one_run():
    calls = []

    async def fail():
        calls.append(1)
        await asyncio.sleep(0.02)
        raise ValueError("bad key")

    async def main():
        flight = SingleFlight()
        return await asyncio.gather(*(flight.run("k", fail) for _ in range(5)),
                                    return_exceptions=True)

    errors = asyncio.run(main())
    assert len(errors) == 5
    assert all(isinstance(e, ValueError) and str(e) == "bad key" for e in errors)
    assert len(calls) == 1                           # shared, not five failed runs


def test_when_the_running_caller_is_cancelled_a_waiter_runs_it_itself():
    calls = []

    async def work():
        calls.append(1)
        await asyncio.sleep(0.05)
        return len(calls)

    async def main():
        flight = SingleFlight()
        owner = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0.01)
        owner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await owner
        return await waiter

    assert asyncio.run(main()) == 2                  # the waiter ran it, not inherited the cancel
    assert len(calls) == 2
