"""Point-cloud files in pure NumPy + struct: binary PLY (MeshLab, CloudCompare, Blender, Open3D) and glTF binary.

- PLY: ``binary_little_endian 1.0``, one ``vertex`` element with ``float x, y, z`` and ``uchar red, green, blue``
  (15 bytes a point); for a mesh also a ``face`` element, ``list uchar int vertex_indices`` (13 bytes a triangle).
- GLB: glTF 2.0, one mesh primitive in POINTS mode (``mode`` 0) with ``POSITION`` (float32 VEC3, with the min/max
  glTF requires) and ``COLOR_0`` (normalized unsigned short VEC4, alpha 65535: vertex attributes must be 4-byte
  aligned, so VEC3 would need padding anyway), 20 bytes a point. glTF defines ``COLOR_0`` as *linear*: the photo's
  sRGB values go through the exact sRGB transfer function, in 16 bits so that dark tones keep every level apart
  (8-bit linear would merge the darkest sRGB levels). The PLY keeps the photo's sRGB bytes: PLY viewers show
  ``uchar red, green, blue`` as they are. a mesh is the same primitive in TRIANGLES
  mode (4) with unsigned int indices (12 bytes a triangle). Chunks padded to 4 bytes (JSON with spaces, BIN with
  zeros) as the format requires.

Both state the frame and the units (:data:`FRAME`, :data:`UNITS`): PLY header comments, the GLB's ``asset.extras``.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from handler.errors import EmptyGeometry
from handler.geometry import PointCloud
from handler.point_formats import FORMATS

_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
_GLB_POSITION, _GLB_COLOR = np.dtype(("<f4", (3,))), np.dtype(("<u2", (4,)))  # a point's POSITION and COLOR_0
_PLY_FACE = np.dtype([("n", "u1"), ("vertex_indices", "<i4", (3,))])
_GLB_TRIANGLE = np.dtype(("<u4", (3,)))  # a triangle's three indices
# Bytes a point and a mesh's triangle take in each format's file: their records; the header comes on top.
POINT_BYTES = {"ply": _PLY_VERTEX.itemsize, "glb": _GLB_POSITION.itemsize + _GLB_COLOR.itemsize}
FACE_BYTES = {"ply": _PLY_FACE.itemsize, "glb": _GLB_TRIANGLE.itemsize}
_GLB_MAGIC, _GLB_VERSION = 0x46546C67, 2  # "glTF"
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942  # "JSON", "BIN\0"
_FLOAT, _UNSIGNED_SHORT, _UNSIGNED_INT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_POINTS, _TRIANGLES = 0, 4
# Written into every file (PLY header comments, the GLB's asset.extras): a reader cannot guess them.
# sRGB level (0-255) → linear (IEC 61966-2-1's transfer function) as normalized unsigned short
_SRGB = np.arange(256) / 255
_LINEAR_U16 = np.round(np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4) * 65535).astype(
    "<u2"
)
FRAME = "x right, y up, camera at the origin looking down -z (the glTF / OpenGL camera frame)"
UNITS = "relative: MiDaS_small relative depth mapped to scene units, not metres"


def encode(cloud: PointCloud, fmt: str) -> bytes:
    """``cloud`` as ``fmt`` ("ply" or "glb")."""
    if fmt == "ply":
        return ply_bytes(cloud)
    if fmt == "glb":
        return glb_bytes(cloud)
    raise ValueError(f"unknown point-cloud format {fmt!r}; known: {', '.join(FORMATS)}")


def _refuse_empty(cloud: PointCloud) -> None:
    """A cloud without points or a mesh without triangles is refused (:class:`EmptyGeometry`) in either format: glTF
    has no valid file for them (an accessor counts at least one element), and the same cloud gets the same answer
    whatever the format."""
    if cloud.faces is not None and len(cloud.faces) == 0:
        raise EmptyGeometry(
            "the mesh has no triangles: a triangle needs a 2 x 2 block of kept grid points (a larger point "
            "budget, max_points, or a looser edge threshold)"
        )
    if len(cloud) == 0:
        raise EmptyGeometry(
            "no point is left to write: every pixel's depth was dropped (not positive and finite with this "
            "scale/shift, or cut by the edge threshold)"
        )


def ply_bytes(cloud: PointCloud) -> bytes:
    _refuse_empty(cloud)
    n = len(cloud)
    vertices = np.empty(n, _PLY_VERTEX)
    vertices["x"], vertices["y"], vertices["z"] = cloud.positions.T
    vertices["red"], vertices["green"], vertices["blue"] = cloud.colors.T
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment frame: {FRAME}\ncomment units: {UNITS}\n"
        f"element vertex {n}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
    )
    body = vertices.tobytes()
    if cloud.faces is not None:
        faces = np.empty(len(cloud.faces), _PLY_FACE)
        faces["n"] = 3
        faces["vertex_indices"] = cloud.faces
        header += f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
        body += faces.tobytes()
    return (header + "end_header\n").encode("ascii") + body


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(cloud: PointCloud) -> bytes:
    _refuse_empty(cloud)
    n = len(cloud)
    positions = np.ascontiguousarray(cloud.positions, dtype=_GLB_POSITION.base)
    colors = np.empty((n, *_GLB_COLOR.shape), _GLB_COLOR.base)
    colors[:, :3] = _LINEAR_U16[cloud.colors]
    colors[:, 3] = 65535
    pos_bytes, col_bytes = positions.tobytes(), colors.tobytes()  # both multiples of 4 bytes
    index_bytes = b"" if cloud.faces is None else np.ascontiguousarray(cloud.faces, dtype=_GLB_TRIANGLE.base).tobytes()
    binary = pos_bytes + col_bytes + index_bytes
    lo, hi = positions.min(axis=0).tolist(), positions.max(axis=0).tolist()
    primitive = {"attributes": {"POSITION": 0, "COLOR_0": 1}, "mode": _POINTS}
    gltf = {
        "asset": {
            "version": "2.0",
            "generator": "midas-lambda handler.pointcloud",
            "extras": {"frame": FRAME, "units": UNITS},
        },
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "point cloud"}],
        "meshes": [{"primitives": [primitive]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos_bytes), "target": _ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": len(pos_bytes), "byteLength": len(col_bytes), "target": _ARRAY_BUFFER},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": _FLOAT, "count": n, "type": "VEC3", "min": lo, "max": hi},
            {"bufferView": 1, "componentType": _UNSIGNED_SHORT, "normalized": True, "count": n, "type": "VEC4"},
        ],
    }
    if cloud.faces is not None:
        # the photo's colours as they are: unlit (no normals, no lights needed), not a metal ball
        primitive.update(mode=_TRIANGLES, indices=2, material=0)
        gltf["nodes"][0]["name"] = "mesh"
        gltf["materials"] = [
            {
                "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                "doubleSided": True,
                "extensions": {"KHR_materials_unlit": {}},
            }
        ]
        gltf["extensionsUsed"] = ["KHR_materials_unlit"]
        gltf["bufferViews"].append(
            {
                "buffer": 0,
                "byteOffset": len(pos_bytes) + len(col_bytes),
                "byteLength": len(index_bytes),
                "target": _ELEMENT_ARRAY_BUFFER,
            }
        )
        count = int(cloud.faces.size)
        bounds = [int(cloud.faces.min()), int(cloud.faces.max())]
        gltf["accessors"].append(
            {
                "bufferView": 2,
                "componentType": _UNSIGNED_INT,
                "count": count,
                "type": "SCALAR",
                "min": bounds[:1],
                "max": bounds[1:],
            }
        )
    json_chunk = _pad(json.dumps(gltf, separators=(",", ":")).encode(), b" ")
    bin_chunk = _pad(binary, b"\0")
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, total),
            struct.pack("<II", len(json_chunk), _CHUNK_JSON),
            json_chunk,
            struct.pack("<II", len(bin_chunk), _CHUNK_BIN),
            bin_chunk,
        ]
    )
