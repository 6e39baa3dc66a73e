"""Rows of text laid out in uint64 words, a whole batch at once (for the wire encoder).

A row is a sequence of parts, each as wide as its widest row in the batch. A `Field` is text
computed per row, as a few `pieces`: arrays whose values hold up to 8 bytes of text each (the
first byte in the lowest bits), or constants. A `Lookup` is text looked up per row in a `Texts`
table (per-sensor text). `pack` lays the parts out one after the other in `(k, n)` uint64 words:
lookups are gathered from tables already shifted to their byte offset, straight into their
words; constants fill the other words; pieces are shifted into place (straddling two words
maybe) and OR-ed in. Each costs a numpy pass or two over the batch, whatever its width. Where a
value is narrower than its part, its bytes are NUL; the encoder deletes the NULs of a whole
batch at once, so they may sit anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
Piece = tuple[U64 | int, int]  # up to 8 bytes of text, the first in the lowest bits; how many


@dataclass(frozen=True, slots=True)
class Field:
    """A column's text: `pieces` take `width` bytes per row; rows `patch[0]` instead hold the
    text `patch[1]` (NUL-padded rows), at the start of the field."""

    pieces: list[Piece]
    width: int
    patch: tuple[I64, U8] | None = None


def constant(text: bytes) -> Field:
    """Text that is the same in every row."""
    pieces: list[Piece] = [
        (int.from_bytes(text[i : i + 8], "little"), len(text[i : i + 8]))
        for i in range(0, len(text), 8)
    ]
    return Field(pieces, len(text))


@dataclass(frozen=True, slots=True)
class Lookup:
    """Text looked up per row: `table`'s texts at `index`, `width` bytes (the widest of them;
    narrower ones end in NULs)."""

    table: Texts
    index: npt.NDArray[np.intp]
    width: int


def lookup(table: Texts, index: npt.NDArray[np.intp]) -> Lookup:
    return Lookup(table, index, int(table.lengths.take(index, mode="clip").max()))


Part = Field | Lookup


@dataclass(slots=True)
class _Plan:
    """Where every part goes: constant bytes, computed pieces, lookups, patches."""

    constants: bytearray
    arrays: list[tuple[int, U64, int]]
    lookups: list[tuple[int, Lookup]]
    patches: list[tuple[int, int, tuple[I64, U8]]]


def pack(n: int, parts: Sequence[Part]) -> tuple[U64, int]:
    """`(words, width)`: the parts' text one after the other from the first byte of `(k, n)`
    words (word j of row i at `[j, i]`); every row takes `width` bytes, the rest are NUL."""
    width = sum(part.width for part in parts)
    k = (width + 7) // 8
    plan = _plan(parts, k)
    words = np.empty((k, n), dtype=np.uint64)
    _fill(words, plan)
    for at, value, w in plan.arrays:
        _place(words, at, value, w)
    for at, room, (rows, text) in plan.patches:
        row_bytes = np.ascontiguousarray(words[:, rows].T).view(np.uint8)
        row_bytes[:, at : at + room] = 0
        row_bytes[:, at : at + text.shape[1]] = text
        words[:, rows] = row_bytes.view(np.uint64).T
    return words, width


def _plan(parts: Sequence[Part], k: int) -> _Plan:
    plan = _Plan(bytearray(8 * k + 8), [], [], [])
    at = 0
    for part in parts:
        if isinstance(part, Lookup):
            plan.lookups.append((at, part))
        else:
            if part.patch is not None:
                plan.patches.append((at, part.width, part.patch))
            cursor = at
            for value, w in part.pieces:
                if isinstance(value, int):
                    plan.constants[cursor : cursor + w] = value.to_bytes(w, "little")
                else:
                    plan.arrays.append((cursor, value, w))
                cursor += w
        at += part.width
    return plan


def _fill(words: U64, plan: _Plan) -> None:
    """Looked-up text is gathered straight into its words; constant text fills the others and
    is OR-ed into those it shares with a lookup (computed text is OR-ed in after)."""
    k = words.shape[0]
    fill = np.frombuffer(bytes(plan.constants[: 8 * k]), dtype="<u8").astype(np.uint64)
    looked_up = np.zeros(k, dtype=np.bool_)
    for at, part in plan.lookups:
        first = at // 8
        last = min(k, -(-(at + part.width) // 8))
        if looked_up[first]:  # its first word holds the end of the lookup before it
            block = part.table.words(part.index, at % 8, last - first)
            words[first] |= block[0]
            words[first + 1 : last] = block[1:]
        else:
            part.table.words(part.index, at % 8, last - first, out=words[first:last])
        looked_up[first:last] = True
    for j in range(k):
        if not looked_up[j]:
            words[j] = fill[j]
        elif fill[j]:
            words[j] |= fill[j]


def _place(words: U64, at: int, value: U64, w: int) -> None:
    """OR the `w` bytes of `value` into every row at byte `at` (straddling two words maybe)."""
    i, b = divmod(at, 8)
    words[i] |= value << np.uint64(8 * b) if b else value
    if b + w > 8:
        words[i + 1] |= value >> np.uint64(8 * (8 - b))


class Texts:
    """Text per index (a sensor, or a sensor's quality), for `Lookup`: NUL-padded byte rows,
    and per shift (0..7) the same texts as uint64 words starting that many bytes into the first
    word, so that a batch's lookup is one gather per word, already in place. Immutable: growing
    makes a new one (amortised: rows are copied into arrays of doubling size)."""

    def __init__(self, rows: U8, lengths: I64, size: int) -> None:
        self.rows = rows  # rows < size are valid
        self.lengths = lengths
        self.size = size
        self._shifted: dict[int, U64] = {}

    @classmethod
    def empty(cls) -> Texts:
        return cls(np.zeros((0, 8), dtype=np.uint8), np.zeros(0, dtype=np.int64), 0)

    def extended(self, texts: Sequence[bytes]) -> Texts:
        size = self.size + len(texts)
        widest = max([self.rows.shape[1], *map(len, texts)])
        rows, lengths = self.rows, self.lengths
        if size > rows.shape[0] or widest > rows.shape[1]:
            rows = np.zeros((max(size, 2 * rows.shape[0]), widest), dtype=np.uint8)
            rows[: self.size, : self.rows.shape[1]] = self.rows[: self.size]
            lengths = np.zeros(rows.shape[0], dtype=np.int64)
            lengths[: self.size] = self.lengths[: self.size]
        for i, text in enumerate(texts, start=self.size):  # rows no snapshot reads yet
            rows[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
            rows[i, len(text) :] = 0
            lengths[i] = len(text)
        return Texts(rows, lengths, size)

    def words(self, index: npt.NDArray[np.intp], shift: int, k: int, out: U64 | None = None) -> U64:
        """`(k, n)`: the texts at `index` as `k` words, starting `shift` bytes into the first
        (a text longer than that is cut; the words past it are NUL)."""
        table = self._shifted.get(shift)
        if table is None:
            widest = self.rows.shape[1]
            padded = np.zeros((self.size, -(-(shift + widest) // 8) * 8), dtype=np.uint8)
            padded[:, shift : shift + widest] = self.rows[: self.size]
            table = np.ascontiguousarray(padded.view("<u8").astype(np.uint64, copy=False).T)
            self._shifted[shift] = table
        if k > table.shape[0]:
            table = np.concatenate([table, np.zeros((k - table.shape[0], self.size), np.uint64)])
            self._shifted[shift] = table
        block: U64 = np.take(table[:k], index, axis=1, out=out, mode="clip")
        return block


def words_table(texts: Sequence[bytes]) -> U64:
    """Up to 8 bytes of text each, as uint64 values (the first byte in the lowest bits)."""
    joined = b"".join(t.ljust(8, b"\0") for t in texts)
    return np.frombuffer(joined, dtype="<u8").astype(np.uint64)  # a writable copy
