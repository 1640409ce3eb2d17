#!/usr/bin/env python3
"""make-medical-fixtures.py — write tests/fixtures/medical/: a 16-bit grayscale PNG and the
values salient must read from it at full precision.

    scripts/refenv && .venv-ref/bin/python scripts/make-medical-fixtures.py

gray16.png           20x24, 16-bit gray, written by this script's own PNG encoder (zlib + CRC, one
                     filter-0 row at a time): a ramp whose samples are odd numbers spread over the
                     whole 0..65535 range plus a column of near-equal values (1000, 1001, ... that
                     8 bits cannot tell apart), so an 8-bit reduction is seen
gray16.values.npy    (24,20) float64: sample * 255 / 65535, salient's 0..255 scale at full precision

DICOM (pydicom, Debian's python3-pydicom):

ct_small.values.npy  (128,128) float32: the CT slice Debian's python3-pydicom ships as test data
                     (pydicom/data/test_files/CT_small.dcm), pydicom's own pixel_array through its
                     apply_modality_lut (RescaleSlope 1, RescaleIntercept -1024: Hounsfield units)
ct_small.gray.npy    (128,128) float32: those values through DICOM's linear VOI function (PS3.3
                     C.11.2.1.2.1, written out below) over the image's range (the file has no
                     window): center (min+max+1)/2, width max-min+1, on 0..255
ct_small.gray_40_400.npy  the same with the window center 40, width 400 (--dicom-window 40,400)
mono1.dcm            12x10, 16-bit unsigned, MONOCHROME1, RescaleSlope 0.5, RescaleIntercept -100,
                     WindowCenter 300\500 and WindowWidth 800\1000 (two windows: the first is the
                     default), written with pydicom
mono1.values.npy     its modality values (pydicom's apply_modality_lut of its pixel_array)
mono1.gray.npy       through the file's first window, then inverted (255 - y: MONOCHROME1)

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


def voi_linear(x, c, w):
    """DICOM PS3.3 C.11.2.1.2.1, output range 0..255."""
    x = x.astype(np.float64)
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y))
    return np.clip(y, 0, 255)


def dicom_fixtures():
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.pixel_data_handlers.util import apply_modality_lut
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    v = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    np.save(os.path.join(OUT, "ct_small.values.npy"), v)
    lo, hi = float(v.min()), float(v.max())
    np.save(os.path.join(OUT, "ct_small.gray.npy"), voi_linear(v, (lo + hi + 1) / 2, hi - lo + 1).astype(np.float32))
    np.save(os.path.join(OUT, "ct_small.gray_40_400.npy"), voi_linear(v, 40, 400).astype(np.float32))
    print("CT_small:", v.shape, lo, "..", hi)

    h, w = 12, 10
    stored = (np.arange(h * w, dtype=np.int64).reshape(h, w) * 173 % 2400).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"   # secondary capture
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = os.path.join(OUT, "mono1.dcm")
    out = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    out.SOPClassUID = meta.MediaStorageSOPClassUID
    out.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    out.StudyInstanceUID = out.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    out.Modality = "OT"
    out.Rows, out.Columns = h, w
    out.SamplesPerPixel = 1
    out.PhotometricInterpretation = "MONOCHROME1"
    out.BitsAllocated, out.BitsStored, out.HighBit, out.PixelRepresentation = 16, 16, 15, 0
    out.RescaleSlope, out.RescaleIntercept = "0.5", "-100"
    out.WindowCenter = ["300", "500"]
    out.WindowWidth = ["800", "1000"]
    out.PixelData = stored.tobytes()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.save_as(path, write_like_original=False)
    back = pydicom.dcmread(path)
    mv = apply_modality_lut(back.pixel_array, back).astype(np.float32)
    np.save(os.path.join(OUT, "mono1.values.npy"), mv)
    np.save(os.path.join(OUT, "mono1.gray.npy"), (255.0 - voi_linear(mv, 300, 800)).astype(np.float32))
    print("mono1.dcm:", mv.min(), "..", mv.max())


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
    dicom_fixtures()


if __name__ == "__main__":
    main()
