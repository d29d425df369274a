"""Run a long core job in a child process, streaming its progress, items and result back.

Why a process and not a thread: a GUI stays responsive only while its thread gets the GIL
promptly. Validation training is Python-heavy (module calls, optimizer loops, tokenising), and
CPython hands the GIL over unfairly once three or more threads want it: with training, a preview
and the GUI thread contending, the GUI thread waited up to 290 ms
(``benchmarks/bench_gui_responsiveness.py``). A child has its own interpreter and GIL.

The child is started with ``forkserver`` where the platform has it (a clean server process,
forked per job, with the heavy imports already done: a job starts in a fraction of a second)
and ``spawn`` elsewhere. Arguments and results travel pickled. Messages from the child are
pickled with the plain pickler, so a tensor in one travels as its bytes: ``torch.multiprocessing``'s
shared-memory reductions would hand over a file descriptor that dies with the child, and a
child's last message (its result) is read after it exits.

Usage (on a worker thread)::

    steps = run_in_child(validation_steps, arms, config, progress=progress, cancel=cancel)
    for metrics in steps: ...              # the child's yielded items, as they come
    report = steps_result                  # a generator: the child's return value is StopIteration.value

The job function runs in the child as ``fn(*args, progress=..., cancel=..., **kwargs)``; it
returns a value or is a generator. It must be importable by name (module level, no Qt).
Cancelling the token here cancels the child's token; a child that does not stop within
``grace_s`` is terminated.

Debugging: with ``GRAFT_TRACE_CHILD_CALLS=/some/file`` set when a job starts, the child appends
one line per call of a function in ``core`` (``pid<TAB>thread<TAB>file:function``) to that file
(the app's tests use it to see where tensor work runs).
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from typing import Any

from core.errors import Cancelled, GraftError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)

#: Imported once by the fork server, so each child starts with them loaded (the model code of
#: the main families too: seconds of imports a validation run would otherwise start with). The
#: first one lowers the server's CPU priority, which its children inherit.
DEFAULT_PRELOAD = (
    "core._lower_priority",
    "core.training",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "transformers.models.llama.modeling_llama",
    "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.vit.modeling_vit",
)

#: Environment variable naming a file the children log their calls into ``core`` to.
TRACE_ENV = "GRAFT_TRACE_CHILD_CALLS"

_LOCK = threading.Lock()
_CONTEXT: multiprocessing.context.BaseContext | None = None


def context(preload: Sequence[str] = DEFAULT_PRELOAD) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for child jobs (forkserver with ``preload``, else spawn)."""
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(list(preload))
            else:  # spawn: each child lowers its own priority in _child_main
                ctx = multiprocessing.get_context("spawn")
            _CONTEXT = ctx
        return _CONTEXT


def start_server() -> None:
    """Start the fork server now (it imports torch and transformers, seconds) so that the first
    child job starts at once. Returns without waiting; harmless where there is no fork server."""
    ctx = context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def child_threads() -> int:
    """Threads a child's torch may use: all cores but one, which stays with the GUI."""
    return max(1, (os.cpu_count() or 2) - 1)


def run_in_child(
    fn: Callable[..., Any],
    *args: Any,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    threads: int | None = None,
    grace_s: float = 10.0,
    **kwargs: Any,
) -> Generator[Any, None, Any]:
    """Run ``fn`` in a child process; yield its items; return its return value.

    Raises:
        Cancelled: ``cancel`` was set (the child stopped, or was terminated after ``grace_s``).
        GraftError: the child raised one (the same class and message), or died without an answer.
        Exception: whatever else the child raised, when it can be pickled.
    """
    ctx = context()
    receiver, sender = ctx.Pipe(duplex=False)  # child → parent: progress, items, the outcome
    stop_reader, stop = ctx.Pipe(duplex=False)  # parent → child: a message (or EOF) cancels
    trace = os.environ.get(TRACE_ENV) or None
    child = ctx.Process(
        target=_child_main,
        args=(sender, stop_reader, fn, args, kwargs, threads or child_threads(), trace),
        name=f"graft-{getattr(fn, '__name__', 'job')}",
        daemon=True,
    )
    cancel.check()
    child.start()
    sender.close()  # the child holds the only writer: a dead child reads as EOF here
    stop_reader.close()
    finished = False
    give_up_at = None  # once cancelled: when a child that has not stopped is terminated
    try:
        while True:
            if cancel.cancelled and give_up_at is None:
                _tell_stop(stop)
                give_up_at = time.monotonic() + grace_s
            if not receiver.poll(0.05):
                if give_up_at is not None and time.monotonic() > give_up_at:
                    log.warning("the child job did not stop within %.0f s of cancel; terminating it", grace_s)
                    child.terminate()
                    raise Cancelled("cancelled by the user")
                continue
            try:
                kind, *payload = pickle.loads(receiver.recv_bytes())
            except EOFError:
                child.join(timeout=grace_s)
                if cancel.cancelled:
                    raise Cancelled("cancelled by the user") from None
                raise GraftError(
                    f"the background process running {getattr(fn, '__name__', 'the job')} exited unexpectedly "
                    f"(exit code {child.exitcode}); see the log, and try again with fewer steps or a smaller model"
                ) from None
            if kind == "progress":
                progress(*payload)
            elif kind == "item":
                yield payload[0]
            elif kind == "done":
                finished = True
                return payload[0]
            elif kind == "error":
                finished = True
                exc, text = payload
                log.debug("child job %s failed:\n%s", getattr(fn, "__name__", fn), text)
                raise exc
    finally:
        if not finished and not stop.closed:
            _tell_stop(stop)
        stop.close()
        receiver.close()
        child.join(timeout=grace_s)
        if child.is_alive():
            log.warning("the child job did not stop within %.0f s; terminating it", grace_s)
            child.terminate()
            child.join(timeout=grace_s)


def _tell_stop(stop) -> None:
    try:
        stop.send("stop")
    except OSError:  # the child is gone already
        pass
    stop.close()


# -- child side ---------------------------------------------------------------------------------


def _child_main(sender, stop, fn, args, kwargs, threads: int, trace: str | None) -> None:
    if multiprocessing.get_start_method(allow_none=True) != "forkserver" and "core._lower_priority" not in sys.modules:
        import core._lower_priority  # noqa: F401  (spawned children: below the GUI's priority)
    token = CancelToken()
    if trace:
        _trace_core_calls(trace)

    def watch() -> None:
        try:
            stop.recv()  # "stop", or EOFError when the parent closes its end or dies
        except (EOFError, OSError):
            pass
        token.cancel()

    threading.Thread(target=watch, daemon=True, name="graft-cancel").start()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass

    def send(*message) -> None:
        sender.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def progress(fraction: float, message: str) -> None:
        send("progress", float(fraction), str(message))

    try:
        result = fn(*args, progress=progress, cancel=token, **kwargs)
        if inspect.isgenerator(result):
            try:
                while True:
                    token.check()
                    send("item", next(result))
            except StopIteration as end:
                result = end.value
        send("done", result)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        send("error", _portable(exc), traceback.format_exc())
    finally:
        sender.close()


def _trace_core_calls(path: str) -> None:
    from pathlib import Path

    core_dir = str(Path(__file__).resolve().parent)
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the child's whole life
    pid = os.getpid()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(core_dir):
            name = frame.f_code.co_filename[len(core_dir) + 1 :]
            out.write(f"{pid}\t{threading.current_thread().name}\t{name}:{frame.f_code.co_name}\n")

    sys.setprofile(profile)
    threading.setprofile(profile)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a GraftError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is re-raised by message
        return GraftError(f"{type(exc).__name__}: {exc}")
