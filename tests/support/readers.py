"""Readers of the function's file outputs (PFM, PLY, GLB): the function itself only writes them."""

from __future__ import annotations

import json
import struct

import numpy as np

_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
_GLB_MAGIC = 0x46546C67  # "glTF"


def read_pfm(data: bytes) -> np.ndarray:
    """A grayscale PFM (upstream write_pfm: bottom-to-top rows, the scale's sign gives the byte order) → float32."""
    header, dims, scale, body = data.split(b"\n", 3)
    if header != b"Pf":
        raise ValueError("not a grayscale PFM")
    width, height = (int(v) for v in dims.split())
    dtype = "<f4" if float(scale) < 0 else ">f4"
    return np.flipud(np.frombuffer(body, dtype=dtype, count=width * height).reshape(height, width)).astype(np.float32)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] → sRGB levels 0-255 (IEC 61966-2-1's encoding function, rounded)."""
    linear = np.clip(np.asarray(linear, np.float64), 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(encoded * 255).astype(np.uint8)


def read_glb_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A GLB's POSITION and COLOR_0 accessors: (positions float32 (N, 3), colours as sRGB uint8 (N, 3)). glTF's
    ``COLOR_0`` is linear (normalized unsigned short here): it is encoded back to sRGB levels, the photo's."""
    magic, _, total = struct.unpack_from("<III", data)
    if magic != _GLB_MAGIC or total != len(data):
        raise ValueError("not a GLB file")
    json_length, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20 : 20 + json_length])
    binary = data[20 + json_length + 8 :]
    views, accessors = gltf["bufferViews"], gltf["accessors"]
    pos, col = accessors[0], accessors[1]
    pos_view, col_view = views[pos["bufferView"]], views[col["bufferView"]]
    positions = np.frombuffer(binary, "<f4", pos["count"] * 3, pos_view["byteOffset"]).reshape(-1, 3)
    if (col["componentType"], col["type"], col.get("normalized")) != (5123, "VEC4", True):
        raise ValueError(f"COLOR_0 is not normalized unsigned short VEC4: {col}")
    linear = np.frombuffer(binary, "<u2", col["count"] * 4, col_view["byteOffset"]).reshape(-1, 4)[:, :3]
    return positions.copy(), linear_to_srgb8(linear / 65535)


def read_ply_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of the function's binary PLY layout: (positions float32 (N, 3), colours uint8 (N, 3))."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    count = int(data[: data.index(b"\nproperty")].rsplit(b"element vertex ", 1)[1])
    vertices = np.frombuffer(data, _PLY_VERTEX, count=count, offset=end)
    positions = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1)
    return positions, np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1)
