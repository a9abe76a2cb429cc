"""spark-submit entry point that writes a canonical feature table.

spark-submit jobs/prepare.py mnist --output data/tables/mnist-test
"""

import sys

from deepclust.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
