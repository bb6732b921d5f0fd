"""spark-submit entry point for the `redact` stage: `spark-submit jobs/redact.py --input PATH... --output PATH`.

Same arguments as `forge redact`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["redact", *sys.argv[1:]]))
