"""The point-cloud file formats by name: each one's file suffix and media type (the writers are handler.pointcloud's).

Dependency-free, so that what only names the formats (the settings, which every path imports first, the CLI's
arguments, the API's schemas) does not import the writers and NumPy with them.
"""

from __future__ import annotations

FORMATS = {"ply": (".ply", "application/x-ply"), "glb": (".glb", "model/gltf-binary")}
