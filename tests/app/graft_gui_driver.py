"""Drive the main window in tests the way a user watches it: wait for plans and previews."""

from __future__ import annotations


class GuiDriver:
    """Waits on the window's workspace the way a user watches it (no private hooks)."""

    def __init__(self, qtbot, window) -> None:
        self.qtbot, self.window = qtbot, window

    def plan(self, check=lambda plan: True, timeout=120_000):
        """Wait until the workspace holds a plan satisfying ``check``; return it."""
        ws = self.window.workspace
        self.qtbot.waitUntil(lambda: ws.plan is not None and check(ws.plan.plan), timeout=timeout)
        return ws.plan.plan

    def preview(self, tensor=None, timeout=120_000):
        """Wait for a preview of ``tensor`` (default: the selected one) made from the current plan."""
        ws = self.window.workspace

        def ready():
            data = self.window.preview.data
            return (
                data is not None
                and not ws.preview_controller.running
                and self.window.preview.settled
                and data.tensor == (tensor or ws.selected_tensor)
                and ws.plan is not None
                and ws.previewed_recipe is ws.plan.recipe  # not the last plan's (this one's may not have started)
                and tuple(ws.plan.plan.tensor(data.tensor).shape) == tuple(data.target_shape)
            )

        self.qtbot.waitUntil(ready, timeout=timeout)
        return self.window.preview.data

    def open_demo(self):
        self.window.open_source("demo")
        plan = self.plan()
        self.preview()
        return plan

    def set_target(self, sizes: dict) -> None:
        for key, value in sizes.items():
            self.window.target.size_spins[key].setValue(value)

    def queued(self, start, timeout=10_000):
        """Do ``start()`` (a user action whose flow queues a job) and return the queue entry it added."""
        entries = self.window.workspace.queue.entries
        before = len(entries)
        start()
        self.qtbot.waitUntil(lambda: len(entries) > before, timeout=timeout)
        return entries[before]


def await_result(qtbot, awaitable, timeout=10_000):
    """Await ``awaitable`` in a coroutine on the app's loop while qtbot spins Qt; return its result
    (or raise its exception, ``asyncio.CancelledError`` when the coroutine was cancelled)."""
    task = start_awaiting(awaitable)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


def start_awaiting(awaitable):
    """A task on the app's loop awaiting ``awaitable`` (an exception it raises stays in the task)."""
    from app.jobs import event_loop

    async def wait():
        return await awaitable

    return event_loop().create_task(wait())
