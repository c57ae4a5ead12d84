"""The tile cache: an in-memory LRU in front of an on-disk store shared by worker processes.

Keys are made of everything that changes the bytes (see :func:`cache_key`): source ids with
their data versions, grid, z/x/y, format, normalized parameters, the caller's access key and
the tuning fingerprint.  A re-ingested layer gets a new data version, so its old tiles are
never looked up again - no purge is needed; they age out of memory by LRU and off the disk
by the size sweep.

On disk a tile lives at ``<root>/<h[:2]>/<h>`` (``h`` = SHA-256 of the key; one level of
256 directories: with two levels nearly every cold tile created two new directories, which
measured ~0.8 ms of journaled metadata work per tile on ext4, as much as rendering it).  It is
written to a temporary file in the same directory and moved into place with
``os.replace``, which is atomic on POSIX: another process reads either the whole old file,
the whole new one, or nothing - never a torn tile.  A zero-length file records an empty
tile.  The disk size is bounded by a sweep (oldest files first, by modification time) that
runs in a thread once enough has been written since the last one.

A server writes its freshly rendered tiles through :meth:`DiskCache.put_later`: one writer
thread per process drains a bounded queue, so a cold tile costs the request a queue append
instead of a thread-pool job (an asyncio task, a future and a context copy each: together
with ``tempfile.mkstemp``'s random names, ~15 % of the server's profile samples on cold
z14-z16 tiles).  When the disk falls behind by more than the queue holds (4,096 tiles or 64
MB), writes are dropped (counted in ``dropped``): the tile is still in memory and is simply
rendered again later.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("tile_server.cache")


def cache_key(*parts: object) -> str:
    """A stable key from its parts (joined with a separator no part contains unescaped)."""
    return "\x1f".join(str(p) for p in parts)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class MemoryLRU:
    """A byte-budgeted LRU of ``hash -> bytes`` (thread-safe; the seeder uses threads)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.bytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, h: str) -> bytes | None:
        with self._lock:
            value = self._items.get(h)
            if value is not None:
                self._items.move_to_end(h)
            return value

    def put(self, h: str, value: bytes) -> None:
        size = len(value) + 100        # rough per-entry overhead, so empty tiles count too
        if size > self.max_bytes // 4:
            return                     # one huge tile must not flush everything else
        with self._lock:
            old = self._items.pop(h, None)
            if old is not None:
                self.bytes -= len(old) + 100
            self._items[h] = value
            self.bytes += size
            while self.bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= len(dropped) + 100

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """Tiles as files under ``root``; safe for several processes writing at once."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self.max_bytes = max(0, int(max_bytes))
        self._written = 0
        self._sweeping = threading.Lock()
        self._counter_lock = threading.Lock()
        self._tmp_names = itertools.count()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.queue_limit = 4096                 # tiles waiting for the writer, at most...
        self.queue_limit_bytes = 64 * 1024 * 1024   # ...and bytes
        self._queued_bytes = 0
        self._queued_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._writer_lock = threading.Lock()
        self.dropped = 0

    def path(self, h: str) -> Path:
        return self.root / h[:2] / h

    def _dir(self, h: str) -> str:
        # Plain strings on the per-tile paths: building two pathlib objects per probe cost
        # more than the failed open() of a cold tile.
        return f"{self._root}/{h[:2]}"

    def get(self, h: str) -> bytes | None:
        try:
            with open(f"{self._dir(h)}/{h}", "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # a full or broken disk degrades to a miss, never to a 500
            log.warning("tile cache read failed", extra={"error": str(exc)})
            return None

    def contains(self, h: str) -> bool:
        return self.path(h).exists()

    def put_later(self, h: str, value: bytes) -> None:
        """Queue ``put(h, value)`` for this process's writer thread; never blocks."""
        if self.max_bytes <= 0:
            return
        if self._writer_pid != os.getpid():
            self._start_writer()
        q = self._queue
        # SimpleQueue: a C deque with no Condition to notify (queue.Queue's notify was ~7 %
        # of the event loop's profile samples on cold tiles); its bounds are checked here.
        with self._queued_lock:
            if q.qsize() >= self.queue_limit or \
                    self._queued_bytes + len(value) > self.queue_limit_bytes:
                self.dropped += 1
                return
            self._queued_bytes += len(value)
        q.put((h, value))

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every write queued so far is on disk (shutdown, the seeder, tests);
        False if that took longer than ``timeout`` seconds (a stuck disk)."""
        if self._writer_pid != os.getpid():
            return True
        done = threading.Event()
        self._queue.put(done)               # the writer is FIFO: done is set after the rest
        if done.wait(timeout):
            return True
        log.warning("tile cache writes still pending after %.0f s", timeout)
        return False

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer_pid == os.getpid():
                return
            # A forked child must not share the parent's queue, nor count its bytes.
            self._queue = queue.SimpleQueue()
            with self._queued_lock:
                self._queued_bytes = 0
            self._writer = threading.Thread(target=self._write_loop, args=(self._queue,),
                                            name="tile-cache-writer", daemon=True)
            self._writer.start()
            self._writer_pid = os.getpid()

    def _write_loop(self, q: queue.SimpleQueue) -> None:
        while True:
            item = q.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.put(*item)
            except Exception:  # the writer must outlive any one tile
                log.exception("tile cache write failed")
            finally:
                with self._queued_lock:
                    self._queued_bytes -= len(item[1])

    def put(self, h: str, value: bytes) -> None:
        """Write one tile now (blocking file I/O)."""
        if self.max_bytes <= 0:
            return
        folder = self._dir(h)
        target = f"{folder}/{h}"
        # A name unique to this process and call (no random names: mkstemp's cost more
        # than the write); O_EXCL still refuses to reuse a file left by a dead process.
        tmp = f"{folder}/.tmp-{os.getpid()}-{next(self._tmp_names)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                fd = os.open(tmp, flags, 0o600)
            except FileNotFoundError:      # the first tile of this directory
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, flags, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.replace(tmp, target)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            log.warning("tile cache write failed", extra={"error": str(exc)})
            return
        with self._counter_lock:
            self._written += len(value) + 512
            due = self._written > max(self.max_bytes // 10, 1)
            if due:
                self._written = 0
        if due:
            threading.Thread(target=self.sweep, name="tile-cache-sweep", daemon=True).start()

    def sweep(self, target_fraction: float = 0.8) -> int:
        """Delete the oldest files until the store is under ``target_fraction`` of its budget.

        Returns how many files were removed.  Concurrent sweeps in other processes are
        harmless: deleting a file twice is a no-op, and a reader that loses the race just
        sees a miss (an open file stays readable on POSIX after it is unlinked).
        """
        if not self._sweeping.acquire(blocking=False):
            return 0
        try:
            files: list[tuple[float, int, str]] = []
            total = 0
            now = time.time()
            for dirpath, _dirs, names in os.walk(self.root):
                for name in names:
                    p = os.path.join(dirpath, name)
                    try:
                        st = os.stat(p)
                    except OSError:
                        continue
                    if name.startswith(".tmp-") and now - st.st_mtime > 300:
                        _unlink(p)     # left behind by a killed writer
                        continue
                    files.append((st.st_mtime, st.st_size + 512, p))
                    total += st.st_size + 512
            if total <= self.max_bytes:
                return 0
            files.sort()
            removed = 0
            goal = self.max_bytes * target_fraction
            for _mtime, size, p in files:
                if total <= goal:
                    break
                if _unlink(p):
                    removed += 1
                total -= size
            return removed
        finally:
            self._sweeping.release()


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


class TileCache:
    """Memory LRU over the disk store; values are the stored (compressed) tile bytes."""

    def __init__(self, root: Path, memory_bytes: int, disk_bytes: int) -> None:
        self.memory = MemoryLRU(memory_bytes)
        self.disk = DiskCache(root, disk_bytes)
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0

    @classmethod
    def from_settings(cls, settings) -> TileCache:
        root = settings.resolved_data_dir() / "tile-cache"
        return cls(root, int(settings.tiles.cache_memory_mb) * 1024 * 1024,
                   int(settings.tiles.cache_disk_mb) * 1024 * 1024)

    def get(self, h: str) -> bytes | None:
        value = self.memory.get(h)
        if value is not None:
            self.hits_memory += 1
            return value
        value = self.disk.get(h)
        if value is not None:
            self.hits_disk += 1
            self.memory.put(h, value)
            return value
        self.misses += 1
        return None

    def put(self, h: str, value: bytes) -> None:
        """Store in memory at once and on disk (call from a thread: it does file I/O)."""
        self.memory.put(h, value)
        self.disk.put(h, value)

    def stats(self) -> dict:
        return {"memory_entries": len(self.memory), "memory_bytes": self.memory.bytes,
                "hits_memory": self.hits_memory, "hits_disk": self.hits_disk,
                "misses": self.misses}
