"""The cache store itself (no database needed): LRU budget, atomic files, size sweep."""

from __future__ import annotations

import multiprocessing as mp
import os

from tile_server.cache import DiskCache, MemoryLRU, TileCache, key_hash


def test_memory_lru_evicts_least_recently_used_within_its_byte_budget():
    lru = MemoryLRU(max_bytes=4 * 1100)
    for k in "abcd":
        lru.put(k, b"x" * 1000)
    lru.get("a")                 # a is now the most recent
    lru.put("e", b"x" * 1000)
    assert lru.get("b") is None and lru.get("a") is not None and lru.get("e") is not None
    assert lru.bytes <= lru.max_bytes


def test_disk_cache_writes_whole_files_and_leaves_no_temporaries(tmp_path):
    disk = DiskCache(tmp_path, max_bytes=10_000_000)
    h = key_hash("k")
    disk.put(h, b"tile-bytes")
    assert disk.get(h) == b"tile-bytes"
    assert disk.path(h).parent.parent == tmp_path
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_empty_tile_is_stored_as_an_empty_file_and_read_back_as_a_hit(tmp_path):
    cache = TileCache(tmp_path, 1_000_000, 1_000_000)
    cache.put("h" * 64, b"")
    cache.memory.clear()
    assert cache.get("h" * 64) == b""
    assert cache.hits_disk == 1


def _writer(root: str, n: int, marker: bytes) -> None:
    disk = DiskCache(root, max_bytes=10_000_000)
    for i in range(n):
        disk.put(key_hash(f"shared-{i % 5}"), marker * 20_000)


def test_concurrent_writers_in_several_processes_never_leave_a_torn_tile(tmp_path):
    procs = [mp.get_context("fork").Process(target=_writer, args=(str(tmp_path), 200, m))
             for m in (b"A", b"B", b"C")]
    for p in procs:
        p.start()
    disk = DiskCache(tmp_path, max_bytes=10_000_000)
    seen = 0
    while any(p.is_alive() for p in procs):
        for i in range(5):
            data = disk.get(key_hash(f"shared-{i}"))
            if data is not None:
                seen += 1
                assert len(data) == 20_000 and len(set(data)) == 1   # one writer's whole file
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert seen > 0


def test_sweep_brings_the_disk_store_under_budget_oldest_first(tmp_path):
    disk = DiskCache(tmp_path, max_bytes=10 * (1000 + 512))
    hashes = [key_hash(str(i)) for i in range(20)]
    for i, h in enumerate(hashes):
        disk.max_bytes, budget = 10**9, disk.max_bytes   # no automatic sweep while filling
        disk.put(h, b"x" * 1000)
        disk.max_bytes = budget
        os.utime(disk.path(h), (1_000_000 + i, 1_000_000 + i))
    removed = disk.sweep()
    assert removed >= 10
    left = [h for h in hashes if disk.get(h) is not None]
    assert left == hashes[len(hashes) - len(left):]      # the newest survive


def test_queued_writes_reach_the_disk_from_one_writer_thread(tmp_path):
    disk = DiskCache(tmp_path, 10 * 1024 * 1024)
    assert disk._writer is None                      # started by the first queued write
    hashes = [key_hash(f"tile-{i}") for i in range(200)]
    writers = set()
    for i, h in enumerate(hashes):
        disk.put_later(h, b"x" * i)
        writers.add(disk._writer)
    disk.flush()
    assert all(disk.get(h) == b"x" * i for i, h in enumerate(hashes))
    (writer,) = writers
    assert writer.name == "tile-cache-writer" and writer.is_alive()
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert disk.dropped == 0


def test_queued_writes_over_the_queue_bound_are_dropped_not_blocking(tmp_path):
    disk = DiskCache(tmp_path, 10 * 1024 * 1024)
    disk.queue_limit = 0                             # a writer that has fallen behind
    disk.put_later(key_hash("c"), b"c")              # is dropped, not waited for
    disk.flush()
    assert disk.dropped == 1 and disk.get(key_hash("c")) is None
    disk.queue_limit, disk.queue_limit_bytes = 4096, 10  # ...and so is more than 10 bytes
    disk.put_later(key_hash("d"), b"d" * 11)
    disk.put_later(key_hash("e"), b"e" * 10)
    assert disk.flush()
    assert disk.dropped == 2 and disk.get(key_hash("d")) is None and disk.get(key_hash("e"))
    assert disk._queued_bytes == 0
