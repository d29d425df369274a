"""Background work for the app: the only place threads start, and the one way work is run.

Words, each for one thing:
    job: one unit of background work the app runs (a :class:`Job`: a name, a function run on a
        worker thread as ``fn(progress=..., cancel=...)``, its cancel token). Long jobs run
        their tensor work in a child process from that thread (``core.process``).
    flow: an ``async def`` of the app (workspace, window, panels) that awaits jobs and reads top
        to bottom; decorated with :func:`flow`, calling it starts it on the app's loop.
    task: in app code only an asyncio task (a started flow), in local variables; a *training*
        task is ``core.training.tasks``'s.

How: ``JobRunner`` (``runner``) owns the stdlib thread pool and brings each job's progress,
items and outcome back to the GUI thread in order; ``JobController`` (``controller``) runs one
job at a time — ``result = await controller.run(job)``, a newer job supersedes the older —
``JobQueue`` (``queue``) runs long jobs one after another — ``result = await queue.submit(job)``;
all of it on qasync's asyncio loop over Qt's event loop (``loop``). ``factories`` builds jobs
from core's long-running calls, ``results`` holds what they return.
"""

from app.jobs.controller import JobController, eta_seconds
from app.jobs.loop import event_loop, flow, start_flow
from app.jobs.queue import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, QueueEntry
from app.jobs.runner import Job, JobRunner

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "Job",
    "JobController",
    "JobQueue",
    "JobRunner",
    "QueueEntry",
    "event_loop",
    "eta_seconds",
    "flow",
    "start_flow",
]
