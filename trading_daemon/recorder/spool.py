"""The recorder's local spool: batches that could not reach the database, on disk, in order.

One directory per record kind (`<spool>/<kind>/`), one file per segment, named by a zero-padded
sequence number so that sorting the names sorts the segments oldest first. A segment is a run of
frames: a 4-byte big-endian length, then a msgpack `[submitted_at, [record, ...]]`. Frames are
appended and flushed to the OS on every batch (so a crash of the process loses nothing written); the
segment is fsynced when it is sealed (rotation, back-fill, `Recorder.flush/close`).

The methods are blocking file I/O: the channel calls them through `asyncio.to_thread`, one at a time
(its writer task awaits each), so a Spool is never used by two threads at once.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import msgspec
import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
_LEN = struct.Struct(">I")
SUFFIX = ".msgpack"


def _fsync_dir(path: Path) -> None:
    # A new or removed file name is durable only once its directory is fsynced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool(Generic[T]):
    """Append-only segment files of one record kind."""

    def __init__(self, directory: Path, record_type: type[T], *, segment_bytes: int = 8 << 20) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._encoder = msgspec.msgpack.Encoder()
        frame_type: Any = tuple[float, list[record_type]]  # type: ignore[valid-type]
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(frame_type)
        self._open: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._dirty = False  # bytes written to the open segment since its last fsync
        self._sizes: dict[Path, int] = {}
        self._first_t: dict[Path, float] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        # Files left by a previous run (crash or shutdown with the database down) are all sealed:
        # new frames go to a new segment after them.
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            st = path.stat()
            self._sizes[path] = st.st_size
            self._first_t[path] = st.st_mtime
        self._next_seq = 1 + max((int(p.stem) for p in self._sizes), default=0)

    # ---- state (cheap, no I/O: safe to call from the event loop) -------------------------------

    @property
    def empty(self) -> bool:
        return not self._sizes

    @property
    def file_count(self) -> int:
        return len(self._sizes)

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def oldest_submitted_at(self) -> float | None:
        """Wall-clock submit time of the oldest spooled record (file mtime for a previous run's files)."""
        return self._first_t[min(self._sizes)] if self._sizes else None

    @property
    def dirty(self) -> bool:
        return self._dirty

    # ---- blocking I/O (call through asyncio.to_thread) -----------------------------------------

    def append(self, records: Sequence[T], submitted_at: float) -> int:
        """Append one frame; rotate (fsync and seal) the segment once it reaches `segment_bytes`."""
        if not records:
            return 0
        payload = self._encoder.encode((submitted_at, list(records)))
        if self._open is None:
            path = self.directory / f"{self._next_seq:012d}{SUFFIX}"
            self._next_seq += 1
            self._open = path.open("ab")
            self._open_path = path
            self._sizes[path] = 0
            self._first_t[path] = submitted_at
            _fsync_dir(self.directory)
        assert self._open_path is not None
        self._open.write(_LEN.pack(len(payload)) + payload)
        self._open.flush()  # in the OS's hands: survives a crash of this process
        self._dirty = True
        self._sizes[self._open_path] += _LEN.size + len(payload)
        if self._sizes[self._open_path] >= self.segment_bytes:
            self.seal()
        return len(records)

    def sync(self) -> None:
        """fsync the open segment (if it has unsynced frames)."""
        if self._open is not None and self._dirty:
            os.fsync(self._open.fileno())
        self._dirty = False

    def seal(self) -> None:
        """fsync and close the open segment; the next append starts a new one."""
        if self._open is not None:
            self.sync()
            self._open.close()
            self._open = None
            self._open_path = None

    def files(self) -> list[Path]:
        """Every segment, oldest first (seal first if the open one must be included)."""
        return sorted(self._sizes)

    def read(self, path: Path) -> list[T]:
        """The records of a segment in append order. A torn last frame (the process died while
        appending it, so none of its records was acknowledged) is skipped with a warning."""
        data = path.read_bytes()
        out: list[T] = []
        pos = 0
        while pos < len(data):
            if pos + _LEN.size > len(data):
                break
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                break
            _, records = self._decoder.decode(data[pos + _LEN.size : pos + _LEN.size + n])
            out.extend(records)
            pos += _LEN.size + n
        if pos != len(data):
            log.warning(
                "spool segment ends in a torn frame, ignored", path=str(path), torn_bytes=len(data) - pos
            )
        return out

    def remove(self, path: Path) -> None:
        """Delete a segment whose records are committed."""
        if path == self._open_path:
            self.seal()
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._sizes.pop(path, None)
        self._first_t.pop(path, None)

    def reject(self, path: Path, reason: str) -> Path:
        """Move a segment the database refuses (not a transient error) aside, so it neither blocks the
        back-fill nor is lost: `<spool>/rejected/<kind>/`, with the reason in a .txt beside it."""
        if path == self._open_path:
            self.seal()
        target_dir = self.directory.parent / "rejected" / self.directory.name
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{time.time_ns()}-{path.name}"
        os.replace(path, target)
        target.with_suffix(".txt").write_text(reason + "\n")
        _fsync_dir(self.directory)
        self._sizes.pop(path, None)
        self._first_t.pop(path, None)
        return target

    def close(self) -> None:
        self.seal()
