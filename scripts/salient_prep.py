#!/usr/bin/env python3
"""Reference image preprocessing for salient's ImageNet models (the one place it lives).

The C side (host/io) implements exactly the same pipeline:

  1. decode with skimage.io.imread -> uint8 HxWxC; drop alpha (keep the first 3
     channels); gray -> RGB by repeating the channel.
  2. resize so that the SHORTER side becomes 256 (RESIZE_SHORTER); the other side
     becomes floor(other * 256 / shorter + 0.5). Bilinear, half-pixel centres,
     no antialiasing:  src = (dst + 0.5) * in / out - 0.5, clamped to [0, in-1];
     i0 = floor(src), i1 = min(i0 + 1, in - 1), w = src - i0;
     value = (1-wy)*((1-wx)*p[y0][x0] + wx*p[y0][x1]) + wy*((1-wx)*p[y1][x0] + wx*p[y1][x1])
     computed on the uint8 values, no rounding back to integers.
  3. centre crop 224x224: top = (H - 224) // 2, left = (W - 224) // 2.
  4. x / 255, then (x - MEAN[c]) / STD[c] with the constants below. They are the
     "inception-style" ones of the original TensorFlow EfficientNet-Lite
     (efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255),
     i.e. MEAN = 127/255, STD = 128/255 on 0..1 -- equivalently (pixel - 127) / 128.
     The PyTorch port's README example shows the ImageNet mean/std (0.485,0.456,0.406 /
     0.229,0.224,0.225) instead, but the weights are the converted TF ones and give
     clearly more confident, better predictions with 127/128 (see scripts/MODELS.md).
  5. layout CHW (3,224,224), float32, channel order R,G,B.

All arithmetic is done in float64 and cast to float32 once at the end; a C
implementation in float32 agrees to ~1e-5 absolute.

CLI:  salient_prep.py --write-npy [SAMPLES_DIR [NPY_DIR]]   writes NPY_DIR/<stem>.npy for
      every sample photo present in SAMPLES_DIR (defaults: <repo>/samples, <repo>/samples-npy:
      a folder of its own, so that a folder walk over the photos, `salient predict samples/`,
      does not list each photo twice).
"""
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES_DIR = os.path.join(ROOT, "samples")
NPY_DIR = os.path.join(ROOT, "samples-npy")

RESIZE_SHORTER = 256
CROP = 224
MEAN = (127.0 / 255.0,) * 3   # 0.49803921568627...
STD = (128.0 / 255.0,) * 3    # 0.50196078431372...

SKIMAGE_PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
DARKNET_PHOTOS = ("dog.jpg", "eagle.jpg", "giraffe.jpg")
DARKNET_DATA = "/usr/share/darknet/data"


def skimage_data_dir():
    import skimage.data
    return os.path.dirname(skimage.data.__file__)


def photo_origins():
    """(file name, original path) of every sample photo, in fixed order."""
    sk = skimage_data_dir()
    return ([(n, os.path.join(sk, n)) for n in SKIMAGE_PHOTOS] +
            [(n, os.path.join(DARKNET_DATA, n)) for n in DARKNET_PHOTOS])


def sample_sources(samples_dir=SAMPLES_DIR):
    """(stem, path) of the sample photos: those in samples_dir if it holds them, else
    their origins (skimage / darknet data folders)."""
    out = []
    for name, origin in photo_origins():
        p = os.path.join(samples_dir, name)
        out.append((os.path.splitext(name)[0], p if os.path.isfile(p) else origin))
    return out


def load_rgb(path):
    import skimage.io
    img = skimage.io.imread(path)
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: expected 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (1, 2):  # gray (+alpha)
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] >= 3:
        img = img[:, :, :3]
    else:
        raise ValueError(f"{path}: unsupported image shape {img.shape}")
    return np.ascontiguousarray(img)


def _src_coords(n_in, n_out):
    dst = np.arange(n_out, dtype=np.float64)
    src = (dst + 0.5) * n_in / n_out - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_bilinear(img, out_h, out_w):
    """uint8/float HxWxC -> float64 out_h x out_w x C (half-pixel, no antialias)."""
    h, w = img.shape[:2]
    y0, y1, wy = _src_coords(h, out_h)
    x0, x1, wx = _src_coords(w, out_w)
    a = img.astype(np.float64)
    wx_ = wx[None, :, None]
    top = (1.0 - wx_) * a[y0][:, x0] + wx_ * a[y0][:, x1]
    bot = (1.0 - wx_) * a[y1][:, x0] + wx_ * a[y1][:, x1]
    wy_ = wy[:, None, None]
    return (1.0 - wy_) * top + wy_ * bot


def resized_size(h, w, shorter=RESIZE_SHORTER):
    if h <= w:
        return shorter, int(math.floor(w * shorter / h + 0.5))
    return int(math.floor(h * shorter / w + 0.5)), shorter


def preprocess_array(rgb):
    """uint8 HxWx3 -> float32 (3,224,224)."""
    h, w = rgb.shape[:2]
    oh, ow = resized_size(h, w)
    r = resize_bilinear(rgb, oh, ow)
    top, left = (oh - CROP) // 2, (ow - CROP) // 2
    r = r[top:top + CROP, left:left + CROP, :] / 255.0
    r = (r - np.array(MEAN)) / np.array(STD)
    return np.ascontiguousarray(r.transpose(2, 0, 1), dtype=np.float32)


def preprocess(path):
    return preprocess_array(load_rgb(path))


def write_npys(samples_dir=SAMPLES_DIR, npy_dir=NPY_DIR):
    """Write npy_dir/<stem>.npy for every sample photo in samples_dir; returns [(stem, npy)]."""
    out = []
    os.makedirs(npy_dir, exist_ok=True)
    for stem, src in sample_sources(samples_dir):
        if os.path.dirname(os.path.abspath(src)) != os.path.abspath(samples_dir):
            raise FileNotFoundError(f"{os.path.join(samples_dir, os.path.basename(src))} missing "
                                    "(run scripts/fetch-models)")
        npy = os.path.join(npy_dir, stem + ".npy")
        np.save(npy, preprocess(src), allow_pickle=False)
        out.append((stem, npy))
    return out


def main(argv):
    if len(argv) >= 1 and argv[0] == "--write-npy" and len(argv) <= 3:
        d = argv[1] if len(argv) >= 2 else SAMPLES_DIR
        n = argv[2] if len(argv) == 3 else NPY_DIR
        try:
            write_npys(d, n)
        except (FileNotFoundError, ValueError) as e:
            print(f"salient_prep: {e}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
