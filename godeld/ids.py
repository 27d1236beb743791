"""Time-ordered ids (UUIDv7, RFC 9562): inserts append to the end of their index.

Uniqueness comes from the millisecond timestamp, a per-process counter within the millisecond,
and 62 random bits. The random bits come from a generator seeded once from os.urandom (and again
in a forked child): calling os.urandom per id releases the GIL for a syscall, and under load
getting it back from the storage writer thread cost more than everything else in a publish.
Ids are not secrets; nothing relies on them being unguessable.
"""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def uuid7() -> str:
    """A UUIDv7 string, strictly increasing within this process (12-bit counter per ms)."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, _random.getrandbits(9)  # leave room to count up within the ms
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
            ms = _last_ms
        counter = _counter
        rand_b = _random.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
