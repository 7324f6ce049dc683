"""Step times: `python -m gridlstm.bench steps` (`gridlstm.benchmarks.step_speed`). This file
stays so that the commands earlier records and pages name still run."""

import sys

from gridlstm.benchmarks.step_speed import main

if __name__ == "__main__":
    main(sys.argv[1:])
