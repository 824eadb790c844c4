"""Images generated for the images function's tests (no binary fixtures), and readers of what it wrote.

Every source draws a red marker in its top-left corner (in its stored orientation) on a mid-grey ground, so a test can
find where that corner ended up in the output.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import ExifTags, Image, ImageChops, ImageCms, ImageDraw, ImageStat

GREY = (128, 128, 128)
RED = (255, 0, 0)
MARKER_FRACTION = 0.15
CAPTURED_AT = "2024:05:01 12:34:56"
CAMERA = ("Canon", "Canon EOS R5")


def marked(size: tuple[int, int], mode: str = "RGB", ground: tuple[int, ...] = GREY) -> Image.Image:
    """A mid-grey image with a red square in its top-left corner."""
    image = Image.new("RGB", size, ground[:3])
    side = round(min(size) * MARKER_FRACTION)
    ImageDraw.Draw(image).rectangle((0, 0, side - 1, side - 1), fill=RED)
    return image if mode == "RGB" else image.convert(mode)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int) -> Image.Exif:
    """EXIF as a phone writes it: orientation, make, model, capture time, and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = CAMERA
    exif[ExifTags.Base.Software] = "Firmware 1.0"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = CAPTURED_AT
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    return exif


XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.48N"/></rdf:RDF></x:xmpmeta>'
)


def rotated_phone_jpeg(path: Path) -> Path:
    """1600x1200 stored pixels, EXIF orientation 6 (display: turn 90 degrees clockwise, so 1200x1600 portrait), with
    make, model, capture time, GPS, an sRGB ICC profile and XMP."""
    marked((1600, 1200)).save(
        path, "JPEG", quality=90, exif=camera_exif(orientation=6), icc_profile=srgb_icc(), xmp=XMP_WITH_GPS
    )
    return path


def cmyk_jpeg(path: Path, *, icc_profile: bytes | None) -> Path:
    """800x600 CMYK: white ground, a full-cyan-ink block in the top-left quarter."""
    image = Image.new("CMYK", (800, 600), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 399, 299), fill=(255, 0, 0, 0))
    options = {"icc_profile": icc_profile} if icc_profile else {}
    image.save(path, "JPEG", quality=95, **options)
    return path


def rgba_png(path: Path) -> Path:
    """640x480 RGBA: the left half opaque grey with the red marker, the right half fully transparent."""
    image = marked((640, 480), "RGBA")
    ImageDraw.Draw(image).rectangle((320, 0, 639, 479), fill=(0, 0, 255, 0))
    image.save(path, "PNG")
    return path


def palette_png(path: Path) -> Path:
    """600x400 palette image whose index 0 is transparent: the bottom half."""
    image = Image.new("P", (600, 400), 1)
    image.putpalette([0, 0, 0, *GREY, *RED] + [0] * (253 * 3))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 200, 599, 399), fill=0)
    draw.rectangle((0, 0, 59, 59), fill=2)
    image.save(path, "PNG", transparency=0)
    return path


def sixteen_bit_png(path: Path) -> Path:
    """1024x256 16-bit grey: a horizontal ramp from 0 to 65535."""
    image = Image.new("I;16", (1024, 256))
    image.putdata([round(x * 65535 / 1023) for _ in range(256) for x in range(1024)])
    image.save(path, "PNG")
    return path


def animated_gif(path: Path) -> Path:
    """Three 400x300 frames: red, green, blue."""
    frames = [Image.new("RGB", (400, 300), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def animated_webp(path: Path) -> Path:
    frames = [Image.new("RGB", (400, 300), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    return path


def large_webp(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    marked(size).save(path, "WEBP", quality=80)
    return path


def avif(path: Path) -> Path:
    """800x600 AVIF (smaller than the large derivative: it must not be enlarged)."""
    marked((800, 600)).save(path, "AVIF", quality=70)
    return path


def small_png(path: Path, size: tuple[int, int] = (200, 150)) -> Path:
    marked(size).save(path, "PNG")
    return path


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut off halfway through its entropy-coded data."""
    data = io.BytesIO()
    marked((1200, 900)).save(data, "JPEG", quality=90)
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose IHDR claims `width` x `height` (its CRC fixed up, so only the size lies)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def logo_png(size: tuple[int, int] = (200, 100), colour: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """An opaque logo of one colour."""
    buffer = io.BytesIO()
    Image.new("RGBA", size, (*colour, 255)).save(buffer, "PNG")
    return buffer.getvalue()


# --- a CMYK ICC profile, written by hand (Pillow can only create sRGB, XYZ and Lab profiles) -----------------------

INK_LAB = {0: (53.0, 80.0, 67.0), 1: (88.0, -86.0, 83.0), 2: (32.0, 79.0, -108.0)}
"""What this deliberately odd press prints for each ink: cyan ink comes out red, magenta green, yellow blue. A
conversion that ignores the profile turns cyan ink cyan; one that applies it turns it red."""


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _lut16(inputs: int, outputs: int, clut: bytes) -> bytes:
    """An ICC v2 `mft2` with identity curves and a 2-point grid."""
    body = b"mft2" + bytes(4) + bytes([inputs, outputs, 2, 0])
    body += b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    body += struct.pack(">HH", 2, 2)
    body += struct.pack(">HH", 0, 0xFFFF) * inputs + clut + struct.pack(">HH", 0, 0xFFFF) * outputs
    return body


def _lab16(lightness: float, a: float, b: float) -> bytes:
    return struct.pack(">HHH", round(lightness * 0xFF00 / 100), round((a + 128) * 256), round((b + 128) * 256))


def _cmyk_to_lab() -> bytes:
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    inks = [INK_LAB[i] for i, on in enumerate((c, m, y)) if on]
                    if k:
                        lab = (0.0, 0.0, 0.0)
                    elif not inks:
                        lab = (100.0, 0.0, 0.0)
                    else:
                        lab = (
                            min(i[0] for i in inks),
                            sum(i[1] for i in inks) / len(inks),
                            sum(i[2] for i in inks) / len(inks),
                        )
                    clut += _lab16(*lab)
    return _lut16(4, 3, clut)


def _lab_to_cmyk() -> bytes:
    clut = b"".join(struct.pack(">HHHH", 0, 0, 0, 0 if lightness else 0xFFFF) for lightness in (0, 1) for _ in range(4))
    return _lut16(3, 4, clut)


def _description(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(8) + bytes(3) + bytes(67)


def cmyk_icc_profile() -> bytes:
    """A valid ICC v2 output profile (CMYK -> Lab) that LittleCMS accepts."""
    tags = [
        (b"desc", _description("media-pipeline test press")),
        (b"wtpt", b"XYZ " + bytes(4) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)),
        (b"A2B0", _cmyk_to_lab()),
        (b"B2A0", _lab_to_cmyk()),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = struct.pack(">I", offset + len(data)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtrCMYKLab "
    header += bytes(12) + b"acsp" + bytes(28) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    return header + bytes(128 - len(header)) + table + data


# --- reading outputs back -----------------------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the image data (SOS)."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    segments, index = [], 2
    while index < len(data):
        assert data[index] == 0xFF, f"no marker at {index}"
        marker = data[index + 1]
        if marker == 0xDA:
            return segments
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        segments.append((marker, data[index + 4 : index + 2 + length]))
        index += 2 + length
    return segments


def webp_chunks(data: bytes) -> list[str]:
    """The FourCCs of a WebP file's chunks."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", "not a WebP"
    chunks, index = [], 12
    while index + 8 <= len(data):
        fourcc = data[index : index + 4].decode("latin-1")
        size = struct.unpack("<I", data[index + 4 : index + 8])[0]
        chunks.append(fourcc)
        index += 8 + size + (size & 1)
    return chunks


def metadata_carriers(data: bytes) -> list[str]:
    """Every place in an output file where EXIF, XMP, an ICC profile or a comment could travel; empty when clean."""
    if data[:4] == b"RIFF":
        return [c for c in webp_chunks(data) if c in ("EXIF", "XMP ", "ICCP")]
    found = []
    for marker, payload in jpeg_segments(data):
        if marker == 0xE1:
            found.append("APP1 " + payload[:30].decode("latin-1"))  # Exif or XMP
        elif marker == 0xE2:
            found.append("APP2 (ICC profile)")
        elif marker == 0xFE:
            found.append("COM")
        elif 0xE3 <= marker <= 0xEF:
            found.append(f"APP{marker - 0xE0}")
    return found


def region_mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    """The mean of each band over `box`."""
    return tuple(ImageStat.Stat(image.crop(box)).mean)


def mean_difference(first: Image.Image, second: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean absolute difference over `box`, all RGB bands together (same-sized images)."""
    difference = ImageChops.difference(first.convert("RGB").crop(box), second.convert("RGB").crop(box))
    return sum(ImageStat.Stat(difference).mean) / 3
