"""spark-submit entry point for the `ingest-text` stage:
`spark-submit jobs/ingest-text.py --input PATH... --output PATH`.

Same arguments as `forge ingest-text`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-text", *sys.argv[1:]]))
