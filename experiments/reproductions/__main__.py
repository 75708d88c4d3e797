"""``python -m experiments.reproductions NAME [options]``: run one published setup's reproduction."""

import importlib
import sys

NAMES = ("reinmax_polynomial", "arms_toy")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in NAMES:
        print(f"usage: python -m experiments.reproductions {{{','.join(NAMES)}}} [options]", file=sys.stderr)
        return 2
    return importlib.import_module(f"experiments.reproductions.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
