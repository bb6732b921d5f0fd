"""spark-submit entry point for the `classify` stage: `spark-submit jobs/classify.py --input PATH... --output PATH`.

Same arguments as `forge classify`; spark-submit's --master and --conf apply.
"""

import sys

from corpus.cli import main

if __name__ == "__main__":
    sys.exit(main(["classify", *sys.argv[1:]]))
