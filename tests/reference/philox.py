"""Slow, obviously-correct reference of ferrofix's generator, straight from the Philox paper.

Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3" (SC 2011): Philox4x32 with
10 rounds. ferrofix's counter is [index_lo, index_hi, stream, draw], its key the 64-bit seed.
"""

from __future__ import annotations

MASK32 = 0xFFFFFFFF
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(ctr: list[int], key: list[int]) -> list[int]:
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return [c0, c1, c2, c3]


def block(seed: int, stream: int, index: int, draw: int = 0) -> list[int]:
    ctr = [index & MASK32, index >> 32, stream, draw]
    return philox4x32_10(ctr, [seed & MASK32, seed >> 32])


def uniform64(seed: int, stream: int, index: int) -> float:
    b = block(seed, stream, index)
    return ((b[0] | (b[1] << 32)) >> 11) / 2.0**53


def uniform32(seed: int, stream: int, index: int) -> float:
    return (block(seed, stream, index)[0] >> 8) / 2.0**24


def integer(seed: int, stream: int, index: int, low: int, high: int) -> int:
    """Lemire's nearly-divisionless method with rejection, candidates in block order."""
    span = high - low
    threshold = (2**64 - span) % span
    draw = 0
    while True:
        b = block(seed, stream, index, draw)
        for x in (b[0] | (b[1] << 32), b[2] | (b[3] << 32)):
            m = x * span
            if m % 2**64 >= threshold:
                return low + (m >> 64)
        draw += 1
