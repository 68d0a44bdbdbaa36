"""Turning generated images into pixels, grids, PNG and NPZ files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from . import fileio
from .errors import AigcError, arg
from .folders import check_output_file
from .provenance import gif_comment, png_chunks


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] -> uint8 in [0, 255], rounded (the same rule the exported graphs use).

    Non-finite values (a diverged model, a nan input) are refused rather than drawn as black."""
    images = np.asarray(images, np.float32)
    if not np.all(np.isfinite(images)):
        raise AigcError("the model produced values that are not finite; nothing was written")
    return np.clip(np.floor((np.asarray(images, np.float32) + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one [rows*(H+pad)+pad, cols*(W+pad)+pad, C] picture."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = img
    return out


def encode_png(image: np.ndarray, provenance: dict | None = None) -> bytes:
    """PNG bytes of a uint8 [H, W, C] image (C = 1 or 3), without TensorFlow; with `provenance`
    (`provenance.record`), its text chunks."""
    import struct
    import zlib

    h, w, c = image.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    text = b"".join(chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))
                    for key, value in png_chunks(provenance).items()) if provenance else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + text + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def check_output_name(path: str | Path, flag: str | None = None, suffixes=(".png", ".npz")) -> None:
    """Fail early (before any generation) on an output name that cannot be written: a wrong
    suffix, a folder, or a file of a model or export folder (see `folders`)."""
    flag = flag or arg("out")
    if Path(path).suffix.lower() not in suffixes:
        kinds = {".png": ".png (image grid)", ".npz": ".npz (uint8 arrays)", ".gif": ".gif"}
        raise AigcError(f"{flag} {path}: use a {' or '.join(kinds[s] for s in suffixes)} file name")
    check_output_file(path, flag)


def save_images(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None,
                columns: int | None = None, provenance: dict | None = None) -> None:
    """Write uint8 images as a PNG grid (`.png`, with `provenance`'s text chunks) or as arrays
    `images`/`labels` (`.npz`)."""
    check_output_name(path)
    if Path(path).suffix.lower() == ".png":
        fileio.write_bytes(path, encode_png(grid(images, columns), provenance))
    else:
        buf = io.BytesIO()
        arrays = {"images": images}
        if labels is not None:
            arrays["labels"] = np.asarray(labels, np.int32)
        np.savez_compressed(buf, **arrays)
        fileio.write_bytes(path, buf.getvalue())


def save_gif(path: str | Path, frames: list[np.ndarray], seconds_per_frame: float = 0.08, hold: float = 1.5,
             provenance: dict | None = None) -> None:
    """Write uint8 frames [H, W, C] as a looping animated GIF (its comment `provenance`'s record); the
    last frame is held `hold` s."""
    from PIL import Image

    check_output_name(path, arg("gif"), (".gif",))
    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    durations = [int(seconds_per_frame * 1000)] * (len(pictures) - 1) + [int(hold * 1000)]
    buf = io.BytesIO()
    extra = {"comment": gif_comment(provenance)} if provenance else {}
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0,
                     **extra)
    fileio.write_bytes(path, buf.getvalue())


def read_picture(path: str | Path, flag: str, image_shape) -> np.ndarray:
    """A picture file as uint8 [H, W, C] for a model of `image_shape` images, or one line naming `flag`:
    8-bit grayscale (L, or black and white) or colour (RGB, or a palette), no transparency, the
    model's size; a grayscale picture serves a colour model, never the reverse (that would lose colour)."""
    from PIL import Image, UnidentifiedImageError

    h, w, c = image_shape
    fileio.check_readable(path, f"{flag} {path}")
    try:
        with Image.open(path) as picture:
            picture.load()
            mode = picture.mode
            if mode == "P":
                picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
                mode = picture.mode
            if mode in ("RGBA", "LA", "PA"):
                raise AigcError(f"{flag} {path} has transparency ({mode}): save it without an alpha channel")
            if mode not in ("L", "1", "RGB"):
                raise AigcError(f"{flag} {path} has {mode} pixels: save it as 8-bit grayscale (L) or colour (RGB)")
            pixels = np.asarray(picture.convert("L" if mode == "1" else mode), np.uint8)
    except AigcError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise AigcError(f"{flag} {path} is not a picture that can be read (PNG, JPEG, BMP or GIF), or it is "
                        "damaged") from None
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels.shape[:2] != (h, w):
        raise AigcError(f"{flag} {path} is {pixels.shape[1]}x{pixels.shape[0]}; the model draws {w}x{h} pictures")
    if pixels.shape[-1] == 3 and c == 1:
        raise AigcError(f"{flag} {path} is in colour; the model draws grayscale pictures: save it as grayscale (L)")
    return np.repeat(pixels, c, axis=-1) if pixels.shape[-1] != c else pixels
