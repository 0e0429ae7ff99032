"""`server.rendering.image_size` reads a PNG's or JPEG's size from its header, and `decode_portrait`
refuses an oversized or other-format image from it before decoding: images encoded by OpenCV,
and headers edited byte by byte."""

import struct
import time

import cv2
import numpy as np
import pytest

from server.rendering import MAX_PORTRAIT_SIDE, PortraitError, decode_portrait, image_size

SIZES = [(1, 1), (37, 23), (23, 37), (640, 480)]  # (width, height)


def encoded(extension: str, width: int, height: int, channels: int = 3, *params: int) -> bytes:
    """A ``width`` x ``height`` image of seeded noise, encoded by OpenCV."""
    shape = (height, width, channels) if channels > 1 else (height, width)
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ok, data = cv2.imencode(extension, pixels, list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_size_comes_from_its_header(size, channels):
    assert image_size(encoded(".png", *size, channels)) == size


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("progressive", [0, 1])
def test_jpeg_size_comes_from_its_start_of_frame_baseline_or_progressive(size, progressive):
    assert image_size(encoded(".jpg", *size, 3, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive)) == size


def test_jpeg_segments_and_fill_bytes_before_the_frame_are_walked_over():
    data = encoded(".jpg", 37, 23)
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 300) + b"\xff\xc0" * 150  # a frame marker inside a comment
    assert image_size(data[:2] + comment + b"\xff\xff\xff" + data[2:]) == (37, 23)


@pytest.mark.parametrize("data", [
    b"",
    b"GIF89a" + bytes(40),
    encoded(".bmp", 37, 23),
    encoded(".png", 37, 23)[:20],  # cut inside IHDR
    b"\xff\xd8\xff\xfe\x00\x10" + bytes(4),  # a JPEG whose comment runs past the end
    b"\xff\xd8\xff\xda\x00\x08" + bytes(40),  # a scan before any frame
    b"\xff\xd8\x00\x00" + bytes(40),  # not a marker after SOI
], ids=["empty", "gif", "bmp", "truncated_png", "truncated_jpeg", "scan_before_frame", "no_marker"])
def test_anything_else_has_no_size(data):
    assert image_size(data) is None


def test_a_jpeg_of_endless_fill_bytes_is_given_up_on_at_once():
    start = time.perf_counter()
    assert image_size(b"\xff\xd8" + b"\xff" * 50_000_000) is None
    assert time.perf_counter() - start < 0.5


def test_an_oversized_portrait_is_refused_from_its_header_naming_both_sizes():
    side = MAX_PORTRAIT_SIDE + 1
    header = encoded(".png", 8, 8)
    claimed = header[:16] + struct.pack(">II", side, 2) + header[24:]  # IHDR's CRC is wrong: never read
    with pytest.raises(PortraitError, match=f"{side}x2 pixels.*at most {MAX_PORTRAIT_SIDE} pixels"):
        decode_portrait(claimed)


@pytest.mark.parametrize("data,words", [
    (encoded(".bmp", 37, 23), "not a PNG or JPEG"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10" + bytes(20), "not a PNG or JPEG"),  # height 0
    (encoded(".png", 37, 23)[:60], "OpenCV"),  # a readable header, broken pixels
])
def test_other_formats_and_unreadable_images_are_refused(data, words):
    with pytest.raises(PortraitError, match=words):
        decode_portrait(data)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_a_portrait_decodes_to_rgb_at_its_size(extension):
    bgr = np.zeros((23, 37, 3), np.uint8)
    bgr[..., 2] = 255  # red, in OpenCV's channel order
    rgb = decode_portrait(cv2.imencode(extension, bgr)[1].tobytes())
    assert rgb.shape == (23, 37, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - [255, 0, 0]).max() <= 2
