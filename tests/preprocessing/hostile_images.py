"""Small image files whose headers declare huge images, as issue 24 found them (generated, not stored).

Each is a valid file of its format as far as a header reader goes: a
decoder that trusts it allocates what the header says (gigabytes) before
finding out that the data is missing.
"""

import struct
import zlib

# The smallest LZW stream of one pixel (minimum code size 2: clear, index 0, end).
_LZW_ONE_PIXEL = b"\x02\x02\x44\x01\x00"


def gif(screen, frames, frame_size, first_size=None):
    """An animated GIF: a `screen` (width, height), `frames` images each declaring `frame_size`
    (the first `first_size`), every one holding one pixel of data."""
    head = b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"

    def image(size):
        control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # a frame delay
        return control + b"\x2c\x00\x00\x00\x00" + struct.pack("<HH", *size) + b"\x00" + _LZW_ONE_PIXEL

    return head + loop + image(first_size or frame_size) + image(frame_size) * (frames - 1) + b"\x3b"


def png(width, height, rows=4):
    """A PNG header of `width` x `height` RGB whose data holds only its first `rows` rows."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = zlib.compress(b"\x00" * (rows * (1 + 3 * width)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def webp(width, height, size=10_000):
    """An extended (VP8X) WebP of a `width` x `height` canvas, `size` bytes, with no image data."""
    body = b"WEBPVP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body += b"VP8L" + struct.pack("<I", size - len(body) - 16) + b"\x2f" + b"\x00" * (size - len(body) - 17)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def issue_24_files():
    """`{name: bytes}`: the issue's four files, made small where the issue's were merely large."""
    return {
        "animated GIF 2.9 MB": gif((1000, 1000), 126_000, (1000, 1000), first_size=(1, 1)),
        "GIF with a 1x1 screen": gif((1, 1), 30_000, (4000, 4000), first_size=(1, 1)),
        "PNG over the pixel limit": png(20_000, 20_000),
        "WebP 10 KB of a huge canvas": webp(16_000, 16_000),
    }
