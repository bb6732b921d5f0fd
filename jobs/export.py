"""spark-submit entry point for the `export` stage: `spark-submit jobs/export.py --input PATH... --output PATH`.

Same arguments as `forge export`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
