"""spark-submit entry point for the `synthesize` stage: `spark-submit jobs/synthesize.py --input PATH... --output PATH`.

Same arguments as `forge synthesize`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["synthesize", *sys.argv[1:]]))
