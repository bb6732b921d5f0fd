"""spark-submit entry point for the `ingest-web` stage: `spark-submit jobs/ingest-web.py --input PATH... --output PATH`.

Same arguments as `forge ingest-web`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-web", *sys.argv[1:]]))
