"""spark-submit entry point for the `ingest-trajectories` stage:
`spark-submit jobs/ingest-trajectories.py --input PATH... --output PATH`.

Same arguments as `forge ingest-trajectories`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-trajectories", *sys.argv[1:]]))
