"""spark-submit entry point for the `ingest-apis` stage:
`spark-submit jobs/ingest-apis.py --input PATH... --output PATH`.

Same arguments as `forge ingest-apis`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-apis", *sys.argv[1:]]))
