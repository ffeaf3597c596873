"""The holder's photo (``healthcard.issuance.photo``; CARD-SPEC.md §4.3: DDF1/EF07 holds a 2-byte
length and a JPEG, the national SDK refuses length + 2 > 3072)."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from healthcard.card.personalise import photo_file
from healthcard.demo import tiny_jpeg
from healthcard.errors import InvalidValue
from healthcard.issuance.photo import PHOTO_LIMIT, PORTRAIT_SIZE, normalise_photo


def jpeg(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def noisy(width: int, height: int, seed: int = 1) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def with_gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Phone maker"  # Make
    exif[0x0132] = "2026:11:24 10:00:00"  # DateTime
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (34.0, 45.0, 0.0)  # latitude of Zhengzhou
    gps[3], gps[4] = "E", (113.0, 39.0, 0.0)
    return exif.tobytes()


def markers(data: bytes) -> list[int]:
    """The JPEG markers before the scan."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        out.append(marker)
        if marker == 0xDA:
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return out


def refused(data: bytes) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        normalise_photo(data)
    assert caught.value.field == "photo"
    return caught.value


@pytest.fixture(scope="module")
def big_exif_photo() -> bytes:
    """A 600×800 noisy JPEG with EXIF (camera, time, GPS)."""
    return jpeg(noisy(600, 800), quality=90, exif=with_gps_exif())


# --- kept as it is -----------------------------------------------------------------------------


def test_the_limit_is_what_the_sdk_and_the_personaliser_accept() -> None:
    assert PHOTO_LIMIT == 3070
    assert len(photo_file(bytes.fromhex("FFD8") + bytes(PHOTO_LIMIT - 2))) == PHOTO_LIMIT + 2
    with pytest.raises(InvalidValue):
        photo_file(bytes.fromhex("FFD8") + bytes(PHOTO_LIMIT - 1))


def test_a_small_clean_jpeg_is_returned_byte_for_byte() -> None:
    assert normalise_photo(tiny_jpeg()) == tiny_jpeg()
    small = jpeg(Image.new("RGB", PORTRAIT_SIZE, (200, 180, 160)), quality=80)
    assert normalise_photo(small) == small


def test_a_small_grey_jpeg_is_kept() -> None:
    grey = jpeg(Image.new("L", (40, 50), 128))
    assert normalise_photo(grey) == grey


# --- re-encoded ----------------------------------------------------------------------------


def test_a_large_noisy_exif_photo_shrinks_below_the_limit(big_exif_photo: bytes) -> None:
    assert len(big_exif_photo) > 100_000
    out = normalise_photo(big_exif_photo)
    assert len(out) <= PHOTO_LIMIT
    image = Image.open(io.BytesIO(out))
    image.load()
    assert image.format == "JPEG"
    assert image.width <= PORTRAIT_SIZE[0] and image.height <= PORTRAIT_SIZE[1]
    assert "exif" not in image.info and not image.getexif()
    assert b"Exif" not in out and b"Phone maker" not in out


def test_the_result_keeps_the_portrait_aspect(big_exif_photo: bytes) -> None:
    image = Image.open(io.BytesIO(normalise_photo(big_exif_photo)))
    assert image.size == PORTRAIT_SIZE


def test_shrinking_is_deterministic_and_idempotent(big_exif_photo: bytes) -> None:
    first = normalise_photo(big_exif_photo)
    assert normalise_photo(big_exif_photo) == first
    assert normalise_photo(first) == first


def test_the_result_is_baseline_without_metadata_segments(big_exif_photo: bytes) -> None:
    found = markers(normalise_photo(big_exif_photo))
    assert 0xC0 in found  # baseline
    assert 0xC2 not in found  # not progressive
    assert not [m for m in found if 0xE1 <= m <= 0xEF or m == 0xFE]  # no APP1..15, no COM


def test_a_small_photo_with_exif_is_stripped_but_not_enlarged() -> None:
    small = jpeg(Image.new("RGB", (60, 80), (90, 120, 150)), exif=with_gps_exif())
    assert len(small) < PHOTO_LIMIT
    out = normalise_photo(small)
    assert out != small
    image = Image.open(io.BytesIO(out))
    assert not image.getexif()
    assert image.width <= 60 and image.height <= 80  # never upscaled


def test_an_icc_profile_and_a_comment_are_dropped() -> None:
    image = Image.new("RGB", (50, 62), (10, 200, 30))
    with_icc = jpeg(image, icc_profile=b"\x00" * 200, comment=b"scanned at point 410102-01")
    out = normalise_photo(with_icc)
    assert b"ICC_PROFILE" not in out and b"410102-01" not in out


def test_data_after_the_end_marker_is_dropped() -> None:
    trailer = tiny_jpeg() + b"MakerTrailer GPS 34.75N 113.65E"
    out = normalise_photo(trailer)
    assert out.endswith(b"\xff\xd9") and b"GPS" not in out


def test_a_progressive_jpeg_becomes_baseline() -> None:
    progressive = jpeg(Image.new("RGB", (50, 62), (100, 100, 100)), progressive=True)
    out = normalise_photo(progressive)
    assert 0xC2 not in markers(out) and 0xC0 in markers(out)


def test_a_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = jpeg(Image.new("CMYK", (50, 62), (0, 50, 100, 0)))
    assert Image.open(io.BytesIO(normalise_photo(cmyk))).mode == "RGB"


def test_a_landscape_photo_is_cropped_to_a_portrait() -> None:
    out = normalise_photo(jpeg(noisy(800, 400, seed=2), quality=95))
    width, height = Image.open(io.BytesIO(out)).size
    assert height > width
    assert abs(width / height - PORTRAIT_SIZE[0] / PORTRAIT_SIZE[1]) < 0.02


def test_exif_orientation_is_applied_before_it_is_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    stored = jpeg(noisy(800, 600, seed=3), exif=exif.tobytes())  # stored on its side
    image = Image.open(io.BytesIO(normalise_photo(stored)))
    assert image.size == PORTRAIT_SIZE


def test_a_smaller_limit_is_honoured(big_exif_photo: bytes) -> None:
    assert len(normalise_photo(big_exif_photo, limit=1500)) <= 1500


def test_a_limit_no_jpeg_can_meet_is_refused(big_exif_photo: bytes) -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_photo(big_exif_photo, limit=100)
    assert caught.value.field == "photo"
    assert "cannot be made smaller" in caught.value.message


# --- refused -----------------------------------------------------------------------------------


def test_a_png_made_by_pillow_is_not_a_jpeg() -> None:
    out = io.BytesIO()
    Image.new("RGB", PORTRAIT_SIZE, (255, 255, 255)).save(out, "PNG")
    error = refused(out.getvalue())
    assert "PNG" in error.message and "not a JPEG" in error.message


def test_a_gif_is_not_a_jpeg() -> None:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, "GIF")
    assert "GIF" in refused(out.getvalue()).message


def test_random_bytes_are_not_a_jpeg() -> None:
    assert "not a JPEG" in refused(random.Random(7).randbytes(500).replace(b"\xff", b"\x00")).message


def test_an_empty_file_is_refused() -> None:
    assert "empty" in refused(b"").message


def test_a_truncated_jpeg_is_refused(big_exif_photo: bytes) -> None:
    assert "truncated" in refused(big_exif_photo[: len(big_exif_photo) // 2]).message


def test_a_jpeg_cut_inside_its_header_is_refused() -> None:
    assert "damaged" in refused(tiny_jpeg()[:40]).message


def test_a_small_jpeg_without_its_end_marker_is_refused() -> None:
    assert "truncated" in refused(tiny_jpeg()[:-2]).message


def test_a_jpeg_magic_with_garbage_after_it_is_refused() -> None:
    assert "damaged" in refused(b"\xff\xd8\xff\xe0" + bytes(100)).message
