"""Write an official-format MiDaS_small checkpoint with seeded random values (tests and offline demos only).

    python scripts/make_test_checkpoint.py /tmp/midas_test.pt [--seed 0]

Keys, shapes and dtypes are the upstream checkpoint's (bake/random_checkpoint.py), so a strict load of this file
proves the real ``midas_v21_small_256.pt`` loads too. The depth it produces is meaningless.
"""

import argparse
from pathlib import Path

from bake.random_checkpoint import write_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_checkpoint(args.output, args.seed)
    print(f"wrote test checkpoint {args.output} (random weights, seed {args.seed})")


if __name__ == "__main__":
    main()
