"""spark-submit entry point for the `crawl` stage: `spark-submit jobs/crawl.py --input PATH... --output PATH`.

Same arguments as `forge crawl`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["crawl", *sys.argv[1:]]))
