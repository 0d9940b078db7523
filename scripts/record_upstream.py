"""Record upstream's preprocessing, resizing and colours for the unit tests (needs torch and OpenCV: .venv).

    .venv/bin/python scripts/record_upstream.py [tests/unit/data/upstream.npz]

What is recorded, and how: localdev/upstream_record.py. Run it again only when the reference itself changes
(bake/upstream_reference.py); tests/functional/test_upstream_parity.py fails when the committed file is stale.
"""

import argparse
from pathlib import Path

from localdev.upstream_record import write

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data" / "upstream.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT)
    args = parser.parse_args()
    write(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
