"""Long work in one shape: progress, cancel, log, result, status on disk.

- :class:`Job` runs ``fn(ctx, *args, **kwargs)`` and ends ``done`` / ``failed`` /
  ``cancelled``; ``fn`` reports through its :class:`JobContext`.
- With ``status_dir`` a job keeps ``status.json`` and ``log.txt`` there;
  :func:`read_status` reads them back from any process and tells a job whose process is
  gone from a running one.
- :func:`start_child` runs a job in a child process (the status folder is the channel);
  :func:`in_child` does it as the body of an ordinary job.

No Qt here: ``ifllm_lab.ui.jobs`` runs jobs in a worker thread for windows.
"""
from .child import ChildJob, JobFailed, in_child, start_child
from .job import Job, JobCancelled, JobContext, JobError, JobEvent, describe_error
from .status import (
    CANCELLED, DONE, FAILED, FINAL_STATES, QUEUED, RUNNING, STATES, JobStatus, JobStatusError, read_status,
    request_cancel,
)

__all__ = [
    "Job", "JobContext", "JobEvent", "JobCancelled", "JobError", "JobFailed", "describe_error",
    "JobStatus", "JobStatusError", "read_status", "request_cancel", "ChildJob", "start_child", "in_child",
    "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "STATES", "FINAL_STATES",
]
