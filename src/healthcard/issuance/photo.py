"""The holder's photo as the card stores it: a small baseline JPEG (CARD-SPEC.md §2, §4.3).

DDF1/EF07 is a 3,074-byte transparent file holding a 2-byte big-endian length and the JPEG;
the national SDK refuses a photo whose length + 2 exceeds 3,072 (``IRV_DDF1EF07_DATAERR``), so
the JPEG may have at most :data:`PHOTO_LIMIT` = 3,070 bytes (see ``photo_file()`` in
``healthcard.card.personalise``).  The card face shows a 1-inch colour portrait (20 × 25 mm).

:func:`normalise_photo` accepts only JPEG files (by their magic bytes and by Pillow decoding
them completely) and keeps a small, *clean* one byte for byte: baseline, grey or YCbCr colour,
within the limit, with no metadata but the JFIF header.  Anything else — too large, EXIF (the
camera, the time and often the GPS position: private data that has no business on a health
card), XMP, ICC profile, comments, data after the end-of-image marker (phone makers'
trailers), progressive or CMYK coding — is re-encoded: turned upright by its EXIF orientation,
converted to RGB, cropped to the 1-inch portrait's aspect (102 × 126 px at about 130 dpi; a
wide picture keeps its middle, a tall one its upper part, where the face is) and scaled down
to at most that size (never up), then saved as a baseline JPEG without metadata at falling
quality and, if that is not enough, falling size.  Pillow's encoder is deterministic: the same
input gives the same bytes.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from healthcard.errors import InvalidValue

#: the longest JPEG the national SDK accepts in DDF1/EF07 (length + 2 ≤ 3072)
PHOTO_LIMIT = 3070
#: the 1-inch portrait (一寸照片) at about 130 dpi
PORTRAIT_SIZE = (102, 126)
#: JPEG qualities tried in turn before the picture is made smaller
QUALITIES = (85, 75, 65, 55, 45, 35, 25)
#: the smallest picture tried before giving up
MIN_WIDTH = 16
#: refuse pictures with more pixels than this (a decompression bomb, not a portrait)
MAX_PIXELS = 50_000_000

_SOI = b"\xff\xd8\xff"
_OTHER_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
)
# markers with no payload length: TEM, RSTn
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_SOF_BASELINE = {0xC0, 0xC1}
_SOF_OTHER = {0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _refuse(message: str) -> InvalidValue:
    return InvalidValue("photo", message)


def _kind(data: bytes) -> str | None:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypheif"):
        return "a HEIC image (iPhone photo)"
    return None


def _segments(data: bytes) -> tuple[list[int], int]:
    """The markers before the scan data, and the offset of the start-of-scan marker (-1 when
    the header is cut short)."""
    markers: list[int] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return markers, -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        markers.append(marker)
        if marker == 0xDA:
            return markers, pos
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers, -1


def _open(data: bytes) -> Image.Image:
    """Open ``data`` as a JPEG (not decoded yet), or refuse it."""
    if not data:
        raise _refuse("empty file: no photo in it")
    if not data.startswith(_SOI):
        kind = _kind(data)
        if kind is None:
            raise _refuse("not a JPEG file (it does not start with FF D8 FF): save the photo as JPEG (.jpg)")
        raise _refuse(f"{kind}, not a JPEG: save the photo as JPEG (.jpg)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["JPEG"])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _refuse("far too many pixels for a portrait") from None
    except (OSError, SyntaxError, ValueError):
        raise _refuse("a damaged JPEG, its header cannot be read: take or scan the photo again") from None
    if image.format != "JPEG":
        raise _refuse("not a JPEG: save the photo as JPEG (.jpg)")
    if image.width * image.height > MAX_PIXELS:
        raise _refuse(f"{image.width}x{image.height} pixels is far too large for a portrait")
    return image


def _decode(image: Image.Image, data: bytes) -> None:
    """Decode every byte of the scan: a truncated or damaged file is refused here."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise _refuse(f"a damaged or truncated JPEG ({exc}): take or scan the photo again") from None
    _markers, sos = _segments(data)
    if sos < 0 or data.rfind(b"\xff\xd9") < sos:
        raise _refuse("a truncated JPEG (no end-of-image marker): take or scan the photo again")


def _clean(data: bytes, image: Image.Image) -> bool:
    """Baseline, grey or YCbCr, no metadata but the JFIF APP0 header, nothing after the end."""
    markers, _sos = _segments(data)
    if image.mode not in ("L", "RGB") or not data.endswith(b"\xff\xd9"):
        return False
    for marker in markers:
        if marker in _SOF_OTHER:
            return False
        if 0xE1 <= marker <= 0xEF or marker == 0xFE:  # APP1..APP15 (EXIF, XMP, ICC, Adobe…), COM
            return False
    return any(m in _SOF_BASELINE for m in markers)


def _portrait(image: Image.Image) -> Image.Image:
    """Upright, RGB, cropped to the 1-inch aspect, at most :data:`PORTRAIT_SIZE`."""
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):  # a broken EXIF block: use as stored
        upright = image
    rgb = upright.convert("RGB")
    width, height = rgb.size
    target_w, target_h = PORTRAIT_SIZE
    if width * target_h > height * target_w:  # too wide: keep the middle
        crop_w = max(1, round(height * target_w / target_h))
        left = (width - crop_w) // 2
        rgb = rgb.crop((left, 0, left + crop_w, height))
    elif width * target_h < height * target_w:  # too tall: keep the top part, where the face is
        crop_h = max(1, round(width * target_h / target_w))
        top = (height - crop_h) // 4
        rgb = rgb.crop((0, top, width, top + crop_h))
    if rgb.width > target_w:
        rgb = rgb.resize(
            (target_w, max(1, round(rgb.height * target_w / rgb.width))), Image.Resampling.LANCZOS
        )
    rgb.info = {}
    return rgb


def _encode(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=False, subsampling="4:2:0")
    return out.getvalue()


def normalise_photo(data: bytes, *, limit: int = PHOTO_LIMIT) -> bytes:
    """A JPEG for DDF1/EF07 of at most ``limit`` bytes (module docstring); raises
    :class:`~healthcard.errors.InvalidValue` (field ``photo``) for anything but a JPEG."""
    data = bytes(data)
    image = _open(data)
    keep = len(data) <= limit and _clean(data, image)
    if not keep:
        # let libjpeg decode at a reduced scale (1/2 … 1/8) when the photo is large: still every
        # byte is decoded, but a 12-megapixel phone picture takes milliseconds, not a second
        image.draft("RGB", (2 * max(PORTRAIT_SIZE), 2 * max(PORTRAIT_SIZE)))
    _decode(image, data)
    if keep:
        return data
    picture = _portrait(image)
    while True:
        for quality in QUALITIES:
            encoded = _encode(picture, quality)
            if len(encoded) <= limit:
                return encoded
        if picture.width <= MIN_WIDTH:
            raise _refuse(f"cannot be made smaller than {len(encoded)} bytes, the limit is {limit}")
        width = max(MIN_WIDTH, picture.width * 4 // 5)
        picture = picture.resize(
            (width, max(1, round(picture.height * width / picture.width))), Image.Resampling.LANCZOS
        )
        picture.info = {}


__all__ = ["PHOTO_LIMIT", "PORTRAIT_SIZE", "normalise_photo"]
