"""Background work for the app: the only place threads start.

``JobRunner`` owns a stdlib thread pool driven by the qasync loop; ``JobController`` runs one job
at a time and reports through signals; ``JobQueue`` runs long jobs one after another;
``app.jobs.tasks`` builds jobs from core's long-running functions (panels never call those).
"""

from app.jobs.controller import JobController, eta_seconds, on_gui_thread
from app.jobs.queue import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, QueueEntry
from app.jobs.runner import Job, JobRunner, event_loop

__all__ = [
    "CANCELLED", "DONE", "FAILED", "QUEUED", "RUNNING", "Job", "JobController", "JobQueue",
    "JobRunner", "QueueEntry", "event_loop", "eta_seconds", "on_gui_thread",
]
