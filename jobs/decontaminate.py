"""spark-submit entry point for the `decontaminate` stage:
`spark-submit jobs/decontaminate.py --input PATH... --output PATH`.

Same arguments as `forge decontaminate`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["decontaminate", *sys.argv[1:]]))
