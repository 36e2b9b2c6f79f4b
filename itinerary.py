"""Itinerary's entry point: `python itinerary.py [serve|migrate|token|apply] [flags]`."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from itinerary.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
