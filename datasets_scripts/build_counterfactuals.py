"""Build the ProCURE counterfactual dataset: the same command as ``procure build`` (same options), as a script.

    python datasets_scripts/build_counterfactuals.py --benchmarks humaneval,mbpp \\
        --output-dir outputs/procure-counterfactuals

The logic lives in :mod:`procure_trl.dataset.builder` (``build_counterfactual_dataset(BuildConfig(...))``).
"""

import sys

from procure_trl.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
