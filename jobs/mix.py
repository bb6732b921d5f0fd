"""spark-submit entry point for the `mix` stage: `spark-submit jobs/mix.py --input PATH... --output PATH`.

Same arguments as `forge mix`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["mix", *sys.argv[1:]]))
