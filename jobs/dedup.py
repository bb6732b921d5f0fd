"""spark-submit entry point for the `dedup` stage: `spark-submit jobs/dedup.py --input PATH... --output PATH`.

Same arguments as `forge dedup`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["dedup", *sys.argv[1:]]))
