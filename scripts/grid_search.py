"""Grid search over a pipeline spec: the same as ``featclf grid``.

    python scripts/grid_search.py pipelines/hog-linsvm.toml --data photos/ --cv 5
    python scripts/grid_search.py hog-linsvm --data ../shared/data/scene15 --dedupe

Run ``python scripts/grid_search.py --help`` for every option.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featclf.commands import grid  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="grid_search.py", description=grid.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    grid.add_arguments(parser)
    return grid.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
