"""spark-submit entry point for the `write` stage: `spark-submit jobs/write.py --input PATH... --output PATH`.

Same arguments as `forge write`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["write", *sys.argv[1:]]))
