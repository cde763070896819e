"""A frame as a picture (WADO-RS /rendered and /thumbnail, PS3.18 8.3.5 and 9.5).

Grey frames: Modality LUT (Rescale Slope/Intercept) → VOI window (from the request, else the
header's first Window Center/Width, else the frame's own range) → MONOCHROME1 inverted → 8 bit.
Colour frames arrive as RGB and are only scaled to 8 bit. Then fitted into the viewport and
encoded as JPEG or PNG. Plain numpy and Pillow; no framework.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut

Format = Literal["jpeg", "png"]
MEDIA_TYPES: Final[dict[str, Format]] = {"image/jpeg": "jpeg", "image/png": "png"}
VOI_FUNCTIONS: Final = ("linear", "linear_exact", "sigmoid")
THUMBNAIL_SIZE: Final = 128
MAX_VIEWPORT: Final = 4096


class RenderError(ValueError):
    """A rendering parameter that cannot be honoured; the message names the fix."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class RenderOptions:
    window: Window | None = None
    viewport: tuple[int, int] | None = None  # fit within (width, height), keeping the aspect
    quality: int = 90
    format: Format = "jpeg"


def parse_window(value: str) -> Window:
    """``window=center,width[,function]`` (PS3.18 8.3.5.1.3)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (2, 3):
        raise RenderError(f"window must be center,width[,function], not {value!r}")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise RenderError(f"window center and width must be numbers, not {value!r}") from None
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if function not in VOI_FUNCTIONS:
        raise RenderError(f"window function must be one of {', '.join(VOI_FUNCTIONS)}, not {parts[2]!r}")
    if width <= 0 or (function == "linear" and width < 1) or not math.isfinite(center + width):
        raise RenderError(f"window width must be positive (≥ 1 for linear), not {parts[1]!r}")
    return Window(center, width, function)


def parse_viewport(value: str) -> tuple[int, int]:
    """``viewport=vw,vh`` (the source-region part of PS3.18 8.3.5.1.4 is not supported)."""
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise RenderError(f"viewport must be width,height in pixels, not {value!r}")
    width, height = (int(p) for p in parts)
    if not (1 <= width <= MAX_VIEWPORT and 1 <= height <= MAX_VIEWPORT):
        raise RenderError(f"viewport sides must be 1–{MAX_VIEWPORT} pixels, not {value!r}")
    return width, height


def parse_quality(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise RenderError(f"quality must be a whole number 1–100, not {value!r}")
    return int(value)


def _first(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def header_window(ds: Dataset) -> Window | None:
    center, width = _first(ds, "WindowCenter"), _first(ds, "WindowWidth")
    if center is None or width is None or width <= 0:
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR")).lower()
    return Window(center, max(width, 1.0), function if function in VOI_FUNCTIONS else "linear")


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2 / C.11.2.1.3: values → 0..255 (float)."""
    c, w = window.center, window.width
    result: np.ndarray
    if window.function == "sigmoid":
        result = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "linear_exact":
        result = np.clip((values - (c - w / 2)) / w * 255.0, 0, 255)
    else:
        result = np.clip(((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0, 0, 255)
    return result


def _colour_8bit(array: np.ndarray, bits: int) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    scaled: np.ndarray = np.clip(array.astype(np.float32) * (255.0 / (2**bits - 1)), 0, 255)
    return scaled.astype(np.uint8)


def to_8bit(array: np.ndarray, ds: Dataset, window: Window | None) -> np.ndarray:
    """The display values of one frame as uint8 (grey: H×W; colour: H×W×3)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1 or array.ndim == 3:
        return _colour_8bit(array, int(ds.get("BitsStored", 8) or 8))
    if photometric == "PALETTE COLOR":
        rgb: np.ndarray = apply_color_lut(array, ds)
        return _colour_8bit(rgb, 8 * rgb.dtype.itemsize)
    slope = _first(ds, "RescaleSlope") or 1.0
    intercept = _first(ds, "RescaleIntercept") or 0.0
    values = array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    window = window or header_window(ds)
    if window is None:  # no window anywhere: the frame's own range
        low, high = float(values.min()), float(values.max())
        window = Window((low + high) / 2, max(high - low, 1.0), "linear_exact")
    display: np.ndarray = apply_window(values, window)
    if photometric == "MONOCHROME1":
        display = 255.0 - display
    grey: np.ndarray = np.rint(display).astype(np.uint8)
    return grey


def render(array: np.ndarray, ds: Dataset, options: RenderOptions) -> bytes:
    """One decoded frame (``pacs.pixels.decoded_array``) as JPEG or PNG bytes."""
    image = Image.fromarray(to_8bit(array, ds, options.window))
    if options.viewport is not None:
        width, height = options.viewport
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if options.format == "jpeg":
        image.save(out, format="JPEG", quality=options.quality)
    else:
        image.save(out, format="PNG", compress_level=3)
    return out.getvalue()
