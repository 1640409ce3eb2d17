#!/usr/bin/env python3
"""make-medical-fixtures.py — write tests/fixtures/medical/: a 16-bit grayscale PNG and the
values salient must read from it at full precision.

    scripts/refenv && .venv-ref/bin/python scripts/make-medical-fixtures.py

gray16.png           20x24, 16-bit gray, written by this script's own PNG encoder (zlib + CRC, one
                     filter-0 row at a time): a ramp whose samples are odd numbers spread over the
                     whole 0..65535 range plus a column of near-equal values (1000, 1001, ... that
                     8 bits cannot tell apart), so an 8-bit reduction is seen
gray16.values.npy    (24,20) float64: sample * 255 / 65535, salient's 0..255 scale at full precision

Deterministic: no random numbers.
"""
import os
import struct
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "medical")


def png16_gray(path, a):
    h, w = a.shape

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)   # 16-bit, grayscale, no interlace
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def main():
    os.makedirs(OUT, exist_ok=True)
    h, w = 24, 20
    y, x = np.mgrid[0:h, 0:w]
    a = ((y * w + x) * 137 + 1) * 2 + 1            # odd samples, 3 .. 131,521 before the clip
    a = np.clip(a * 65535 // a.max(), 0, 65535) | 1
    a[:, 0] = 1000 + np.arange(h)                   # 1000..1023: one or two 8-bit levels
    a = a.astype(np.uint16)
    png16_gray(os.path.join(OUT, "gray16.png"), a)
    np.save(os.path.join(OUT, "gray16.values.npy"), a.astype(np.float64) * 255.0 / 65535.0)
    print("gray16.png:", a.min(), "..", a.max())


if __name__ == "__main__":
    main()
