"""GLB colours as glTF defines them: COLOR_0 holds *linear* values (the sRGB transfer function undone), in 16 bits
so that no two sRGB levels, the darkest included, share a value; the PLY keeps the photo's sRGB bytes."""

from __future__ import annotations

import io

import numpy as np
from pygltflib import GLTF2

from handler import geometry, pointcloud
from handler.geometry import Options


def every_level_cloud() -> geometry.PointCloud:
    """256 points, point i coloured (i, 255 - i, i // 2)."""
    levels = np.arange(256)
    colors = np.stack([levels, 255 - levels, levels // 2], axis=1).astype(np.uint8).reshape(16, 16, 3)
    return geometry.back_project(np.ones((16, 16), np.float32), colors, 16, 16, 1, Options(scale=1.0, max_points=256))


def srgb_to_linear(levels: np.ndarray) -> np.ndarray:
    c = levels / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def test_color_0_is_the_exact_linear_value_in_normalized_unsigned_short():
    cloud = every_level_cloud()
    gltf = GLTF2.load_from_bytes(pointcloud.glb_bytes(cloud))
    accessor = gltf.accessors[gltf.meshes[0].primitives[0].attributes.COLOR_0]
    assert (accessor.componentType, accessor.type, accessor.normalized) == (5123, "VEC4", True)
    view = gltf.bufferViews[accessor.bufferView]
    rgba = np.frombuffer(gltf.binary_blob(), "<u2", 4 * len(cloud), view.byteOffset).reshape(-1, 4)
    linear = rgba[:, :3] / 65535
    np.testing.assert_allclose(linear, srgb_to_linear(cloud.colors.astype(np.float64)), rtol=0, atol=0.5 / 65535)
    assert (rgba[:, 3] == 65535).all()
    # every sRGB level keeps a value of its own: dark tones do not band (8-bit linear would merge levels 0-3 and more)
    assert len(np.unique(rgba[:, 0])) == 256
    assert np.diff(rgba[np.argsort(cloud.colors[:, 0]), 0].astype(int)).min() >= 19
    assert rgba[cloud.colors[:, 0] == 128, 0][0] == round(srgb_to_linear(np.array(128.0)) * 65535)  # 0.2158, not 0.5


def test_the_ply_keeps_the_photos_srgb_bytes():
    from plyfile import PlyData

    cloud = every_level_cloud()
    vertex = PlyData.read(io.BytesIO(pointcloud.ply_bytes(cloud)))["vertex"]
    assert [p.val_dtype for p in vertex.properties[3:]] == ["u1", "u1", "u1"]
    np.testing.assert_array_equal(np.stack([vertex["red"], vertex["green"], vertex["blue"]], 1), cloud.colors)
