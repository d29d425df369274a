"""Linux AIO reads (core.sources.aio): the bytes ``pread`` gives, errors as OSError with nothing
left in flight, and a context per process."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from core.sources import aio
from core.sources.reader import _aligned


@pytest.fixture
def direct_file(tmp_path):
    # without AIO or O_DIRECT there is nothing here to test: the reader then uses threads,
    # covered by test_reader.py's "direct-threads" gathers
    if not aio.available():
        pytest.skip("this kernel gives no AIO context")
    path = tmp_path / "data.bin"
    data = np.random.default_rng(0).integers(0, 256, size=3 * 1024 * 1024 + 300, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("this file system refuses O_DIRECT")
    yield fd, data
    os.close(fd)


def test_many_reads_give_the_files_bytes_and_stop_short_at_its_end(direct_file):
    fd, data = direct_file
    rng = np.random.default_rng(1)
    count = 3 * aio.DEPTH + 7  # more than one context's worth, in no particular order
    offsets = rng.integers(0, (len(data) - 4096) // 512, size=count) * 512
    offsets[-1] = (len(data) // 512) * 512  # the last sector: 300 bytes, then the end
    counts = np.full(count, 4096)
    buffer = _aligned(count * 4096)
    got = aio.read_many(fd, buffer, np.arange(count) * 4096, offsets, counts)
    assert (got[:-1] == 4096).all() and got[-1] == 300
    for i in range(count):
        assert np.array_equal(buffer[i * 4096 : i * 4096 + got[i]], data[offsets[i] : offsets[i] + got[i]])


def test_a_misaligned_read_is_an_oserror_and_the_next_reads_work(direct_file):
    fd, data = direct_file
    buffer = _aligned(2 * 4096)
    with pytest.raises(OSError) as caught:
        aio.read_many(fd, buffer, np.array([0, 4096]), np.array([0, 100]), np.array([4096, 4096]))
    assert caught.value.errno == errno.EINVAL
    got = aio.read_many(fd, buffer, np.array([0, 4096]), np.array([4096, 0]), np.array([4096, 4096]))
    assert (got == 4096).all() and np.array_equal(buffer[:4096], data[4096:8192])


def test_a_forked_child_reads_with_its_own_context(direct_file):
    fd, data = direct_file
    buffer = _aligned(4096)
    aio.read_many(fd, buffer, np.array([0]), np.array([0]), np.array([4096]))  # the parent's context
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit code is the assertion
        try:
            got = aio.read_many(fd, buffer, np.array([0]), np.array([8192]), np.array([4096]))
            os._exit(0 if got[0] == 4096 and np.array_equal(buffer, data[8192:12288]) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
