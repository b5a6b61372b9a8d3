"""``python -m genimg_course ...`` is the ``genimg`` command."""

import sys

from genimg_course.course.cli import main

sys.exit(main())
