"""``python -m ifllm_lab.jobs STATUS_FOLDER``: the child process of
:func:`ifllm_lab.jobs.child.start_child`."""
import sys

from .child import main

sys.exit(main())
