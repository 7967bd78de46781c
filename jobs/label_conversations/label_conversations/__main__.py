"""``python -m label_conversations``: run the job from its environment (see job.py); exit 1 on failure."""

import logging
import sys

from label_conversations.job import JobConfigError, run_from_env


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run_from_env()
    except JobConfigError as err:
        logging.getLogger("label_conversations").error("%s", err)
        return 2
    print(
        f"label-conversations run {result.run_id}: {result.rows} rows for {len(result.customers)} customer(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
