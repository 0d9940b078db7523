"""Bake the official MiDaS_small checkpoint into a verified ONNX model + manifest.json (build time only).

Usage:
    python scripts/bake_weights.py                                  # download the official release asset
    python scripts/bake_weights.py --checkpoint midas_v21_small_256.pt   # air-gapped: a local file
    python scripts/bake_weights.py --sha256 <hex>                   # pin the checkpoint's digest

Never uses torch.hub: the architecture is built by the ``bake`` package (bake/midas_net.py, backbone from the
geffnet package), the weights come from a file or one plain HTTPS download. Every failure is one line on stderr and
exit code 1; nothing partial is left in the output directory or the download directory. A failed download names the
ways forward without network access: a local copy of the checkpoint, or the random test checkpoint for a demo.

The manifest records where the checkpoint came from: the URL, or a local file's name only (never a path on the
build machine).
"""

import sys

from bake.cli import main

if __name__ == "__main__":
    sys.exit(main())
