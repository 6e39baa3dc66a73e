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
    offset: int = 0  # the byte offset in the file where lines[0] begins (a place to resume)


class LineReader:
    """Reads from the file's current position, which is byte `offset`, the start of line
    number `line` (a resumed replay seeks there first; a fresh one starts at 0, line 1)."""

    def __init__(
        self,
        fh: AsyncBinaryFile,
        *,
        read_bytes: int,
        max_line_bytes: int,
        offset: int = 0,
        line: int = 1,
    ) -> None:
        self._fh = fh
        self._read_bytes = read_bytes
        self._max_line = max_line_bytes
        self._tail = b""
        self._line = line  # the number of the line that `_tail` begins
        self._pos = offset  # the byte offset where `_tail` begins
        self._skipping = False  # inside an over-long line, discarding up to its newline
        self._started = offset > 0  # a BOM is only at the very start
        self._eof = False

    async def read(self) -> Lines | None:
        """The next chunk of complete lines (none, when one read found no line end), or None
        after the last."""
        overlong: list[tuple[int, bytes]] = []
        while not self._eof:
            data = await self._fh.read(self._read_bytes)
            if not self._started:
                self._started = True
                if data.startswith(_BOM):
                    data = data[len(_BOM) :]
                    self._pos += len(_BOM)
            if not data:
                self._eof = True
                break
            if self._skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    self._pos += len(data)
                    return Lines(self._line, [], overlong, self._pos)  # one read a call
                data = data[newline + 1 :]
                self._pos += newline + 1
                self._skipping = False
                self._line += 1
            buf = self._tail + data
            cut = buf.rfind(b"\n")
            if cut < 0:
                self._tail = buf
                self._check_tail(overlong)
                # one read a call, whatever the file holds (a GiB without a newline): the
                # source sees its stop token between two reads
                return Lines(self._line, [], overlong, self._pos)
            lines = buf[:cut].split(b"\n")
            self._tail = buf[cut + 1 :]
            chunk = self._chunk(lines, overlong, crlf=b"\r" in buf, consumed=cut + 1)
            self._check_tail(overlong)
            return chunk
        if self._tail:
            lines, self._tail = [self._tail], b""
            return self._chunk(lines, overlong, crlf=True, consumed=len(lines[0]))
        return Lines(self._line, [], overlong, self._pos) if overlong else None

    def _chunk(
        self, lines: list[bytes], overlong: list[tuple[int, bytes]], *, crlf: bool, consumed: int
    ) -> Lines:
        first, offset = self._line, self._pos
        self._line += len(lines)
        self._pos += consumed
        if crlf:
            lines = [ln.removesuffix(b"\r") for ln in lines]
        if max(map(len, lines)) > self._max_line:
            for i, ln in enumerate(lines):
                if len(ln) > self._max_line:
                    overlong.append((first + i, ln[: self._max_line]))
                    lines[i] = b""
        return Lines(first, lines, overlong, offset)

    def _check_tail(self, overlong: list[tuple[int, bytes]]) -> None:
        if len(self._tail) > self._max_line:
            overlong.append((self._line, self._tail[: self._max_line]))
            self._pos += len(self._tail)
            self._tail = b""
            self._skipping = True
