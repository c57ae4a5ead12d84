"""Single flight: concurrent callers asking for the same thing share one computation.

Used where a burst of identical requests would each do the same expensive work: a map view's
dozen tile requests verifying one API key (argon2), or two viewers asking for the same cold
tile at once.  Keys are per event loop (a process may run several, e.g. test servers in
threads), so a future is only ever awaited on the loop that made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    """``await flight.run(key, fn)``: the first caller runs ``fn()``, the others wait for it.

    The result (or the exception) is shared with every caller that arrived while it ran;
    nothing is kept after it is done.  If the caller running ``fn`` is cancelled (its client
    went away), a waiting caller runs ``fn`` itself instead of inheriting the cancellation.
    """

    def __init__(self) -> None:
        self._inflight: dict[tuple, asyncio.Future] = {}

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        k = (loop, key)
        while (pending := self._inflight.get(k)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise          # this caller itself was cancelled
                # the caller running it went away: run it here instead
        fut: asyncio.Future = loop.create_future()
        self._inflight[k] = fut
        try:
            result = await fn()
            fut.set_result(result)
            return result
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()        # retrieved: the waiters re-raise it, nobody else must
            raise
        finally:
            self._inflight.pop(k, None)

    def __len__(self) -> int:
        return len(self._inflight)
