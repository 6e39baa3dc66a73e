"""Read a file as chunks of whole lines, in constant memory.

The file is read `read_bytes` at a time (through aiofiles, so the event loop never waits on the
disk); the partial line at the end of a read is carried into the next. Memory is bounded by
`read_bytes + max_line_bytes` whatever the file's size: a line longer than `max_line_bytes` is
not accumulated but skipped to its end and reported, with its line number and its beginning,
so that the source can reject it like any other malformed line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

_BOM = b"\xef\xbb\xbf"


class AsyncBinaryFile(Protocol):
    async def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Lines:
    first: int  # 1-based line number of lines[0]
    lines: list[bytes]  # without terminators (LF or CRLF); an over-long line appears as b""
    overlong: list[tuple[int, bytes]] = field(default_factory=list)  # (line number, beginning)


class LineReader:
    def __init__(self, fh: AsyncBinaryFile, *, read_bytes: int, max_line_bytes: int) -> None:
        self._fh = fh
        self._read_bytes = read_bytes
        self._max_line = max_line_bytes
        self._tail = b""
        self._line = 1  # the number of the line that `_tail` begins
        self._skipping = False  # inside an over-long line, discarding up to its newline
        self._started = False
        self._eof = False

    async def read(self) -> Lines | None:
        """The next chunk of complete lines, or None after the last."""
        overlong: list[tuple[int, bytes]] = []
        while not self._eof:
            data = await self._fh.read(self._read_bytes)
            if not self._started:
                self._started = True
                data = data.removeprefix(_BOM)
            if not data:
                self._eof = True
                break
            if self._skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    continue
                data = data[newline + 1 :]
                self._skipping = False
                self._line += 1
            buf = self._tail + data
            cut = buf.rfind(b"\n")
            if cut < 0:
                self._tail = buf
                self._check_tail(overlong)
                continue
            lines = buf[:cut].split(b"\n")
            self._tail = buf[cut + 1 :]
            chunk = self._chunk(lines, overlong, crlf=b"\r" in buf)
            self._check_tail(overlong)
            return chunk
        if self._tail:
            lines, self._tail = [self._tail], b""
            return self._chunk(lines, overlong, crlf=True)
        return Lines(self._line, [], overlong) if overlong else None

    def _chunk(self, lines: list[bytes], overlong: list[tuple[int, bytes]], *, crlf: bool) -> Lines:
        first = self._line
        self._line += len(lines)
        if crlf:
            lines = [ln.removesuffix(b"\r") for ln in lines]
        if max(map(len, lines)) > self._max_line:
            for i, ln in enumerate(lines):
                if len(ln) > self._max_line:
                    overlong.append((first + i, ln[: self._max_line]))
                    lines[i] = b""
        return Lines(first, lines, overlong)

    def _check_tail(self, overlong: list[tuple[int, bytes]]) -> None:
        if len(self._tail) > self._max_line:
            overlong.append((self._line, self._tail[: self._max_line]))
            self._tail = b""
            self._skipping = True
