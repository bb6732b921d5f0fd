"""spark-submit entry point for the `filter` stage: `spark-submit jobs/filter.py --input PATH... --output PATH`.

Same arguments as `forge filter`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["filter", *sys.argv[1:]]))
