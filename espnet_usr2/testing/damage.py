"""Damaged media for tests (test material only): bytes overwritten inside chosen packets, or a
file cut inside a packet, as web downloads arrive. Packets are found with PyAV
(``packet.pos``); what FFmpeg's decoders then do with them is up to the decoders (see
``test/prep/test_roi_damage.py`` for which damage they reject)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, List, Tuple


def packet_table(path: Path, kind: str) -> List[Tuple[int, int, Fraction]]:
    """``(byte position, size, timestamp in s)`` of each non-empty ``kind`` (audio / video) packet."""
    import av

    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pos, p.size, Fraction(p.pts) * p.time_base) for p in container.demux(stream) if p.size]


def damage_packets(
    src: Path, dst: Path, kind: str, indices: Iterable[int], offset: float = 0.1, nbytes: int = 16, fill: int = 0xFF
) -> List[Fraction]:
    """Copy ``src`` to ``dst`` with ``nbytes`` overwritten at ``offset`` (0..1) into each of the
    ``kind`` packets at ``indices`` (demux order); returns their timestamps."""
    packets = packet_table(src, kind)
    data = bytearray(Path(src).read_bytes())
    times = []
    for index in indices:
        pos, size, time = packets[index]
        start = pos + int(size * offset)
        data[start : start + nbytes] = bytes([fill]) * nbytes
        times.append(time)
    Path(dst).write_bytes(bytes(data))
    return times


def cut_inside_packet(src: Path, dst: Path, kind: str, index: int) -> Fraction:
    """Copy ``src`` cut in the middle of its ``kind`` packet ``index`` (a broken download);
    returns that packet's timestamp."""
    pos, size, time = packet_table(src, kind)[index]
    Path(dst).write_bytes(Path(src).read_bytes()[: pos + size // 2])
    return time
