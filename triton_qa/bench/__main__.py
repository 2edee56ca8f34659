"""`python -m triton_qa.bench`, the same as `triton-qa bench`."""

import logging
import os
import sys

from triton_qa.bench.command import main

if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("TRITON_QA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(main())
