"""spark-submit entry point for the `extract` stage: `spark-submit jobs/extract.py --input PATH... --output PATH`.

Same arguments as `forge extract`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
