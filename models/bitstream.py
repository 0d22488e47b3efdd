"""One compressed image as one byte string: a small header, then every entropy-coded stream.

Layout: varint height, varint width, varint stream count, one varint length per stream, then
the streams. The decoder derives every latent shape from (height, width) and the model, so
the header is all it needs; bpp counts the whole string, header included.
"""

from __future__ import annotations

MAGIC = b"R1"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("bitstream truncated in a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def pack(height: int, width: int, streams: list[bytes]) -> bytes:
    header = MAGIC + _varint(height) + _varint(width) + _varint(len(streams))
    header += b"".join(_varint(len(s)) for s in streams)
    return header + b"".join(streams)


def unpack(data: bytes) -> tuple[int, int, list[bytes]]:
    if data[:2] != MAGIC:
        raise ValueError("not an rdc bitstream (bad magic)")
    pos = 2
    height, pos = _read_varint(data, pos)
    width, pos = _read_varint(data, pos)
    count, pos = _read_varint(data, pos)
    lengths = []
    for _ in range(count):
        n, pos = _read_varint(data, pos)
        lengths.append(n)
    streams = []
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise ValueError("bitstream length does not match its header")
    return height, width, streams
