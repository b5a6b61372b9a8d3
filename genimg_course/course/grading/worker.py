"""The grader's worker process: runs one graded notebook and saves what happened. Not for students.

``grader.grade_submission`` starts it as ``python -m genimg_course.course.grading.worker SPEC`` in a process group of
its own. It runs the notebook with nbclient, cell by cell, with the per-cell and whole-notebook time limits, and
writes results.json (outputs, errors, where it stopped, and the hidden cells' reports) after every cell. With a
sandbox (``sandbox.command``), the kernel runs inside bubblewrap and talks to this process over Unix sockets; this
process, which holds the results, stays outside.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat

from genimg_course.course.grading.answers import limit_memory

MAX_OUTPUT_CHARS = 4000  # per cell, in the feedback
HIDDEN_TAG = "genimg-grading"
SETUP_CELL_SECONDS = 180  # the grader's hidden first cell (imports torch and the course), whatever --timeout-cell


def run_worker(spec_path: str) -> int:
    """Execute one graded notebook (``python -m genimg_course.course.grading.worker SPEC``)."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    spec = json.loads(Path(spec_path).read_text())
    limit_memory(spec["memory"])  # before the kernel starts, so that it inherits the limit
    nb = nbformat.read(spec["notebook"], as_version=4)
    out_path = Path(spec["results"])
    token = spec["token"]
    state = {"results": {}, "errors": [], "outputs": {}, "stopped": "", "stopped_at": None}

    def save():
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, out_path)

    class CappedClient(NotebookClient):
        """Keeps at most 4 x MAX_OUTPUT_CHARS of each cell's text, so a flood cannot exhaust memory."""

        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream":
                text = msg["content"].get("text", "")
                room = 4 * MAX_OUTPUT_CHARS - sum(len(o.get("text", "")) for o in outs)
                if len(text) > room:
                    self._cut[cell_index] = self._cut.get(cell_index, 0) + len(text) - max(room, 0)
                    # keep the grader's result line, which the hidden cells print last
                    keep = [line for line in text.splitlines() if line.startswith(token + " ")]
                    msg["content"]["text"] = text[: max(room, 0)] + "".join(f"\n{line}\n" for line in keep)
            return super().output(outs, msg, display_id, cell_index)

    # startup_timeout: a kernel on a loaded machine (-j N on 2 cores) can take more than nbclient's 60 s to start,
    # and that is no fault of the student's (seen once in CI: every exercise 'not graded')
    km = None
    if spec.get("sandbox"):  # the kernel inside bubblewrap (sandbox.command), talking over Unix sockets (no network)
        folder = Path(spec["kernel_dir"])
        (folder / "spec" / "kernels" / "genimg-sandbox").mkdir(parents=True)
        (folder / "spec" / "kernels" / "genimg-sandbox" / "kernel.json").write_text(json.dumps({
            "argv": [*spec["sandbox"], sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "genimg grading sandbox", "language": "python"}))
        os.environ["JUPYTER_PATH"] = str(folder / "spec")
        km = AsyncKernelManager(kernel_name="genimg-sandbox", transport="ipc", ip=str(folder / "sockets" / "k"),
                                connection_file=str(folder / "sockets" / "connection.json"))
        (folder / "sockets").mkdir()
    client = CappedClient(nb, km=km, timeout=spec["timeout_cell"], allow_errors=True, shutdown_kernel="immediate",
                          startup_timeout=max(180, spec["timeout_cell"]),
                          kernel_manager_class=AsyncKernelManager, kernel_name="python3",
                          interrupt_on_timeout=False, resources={"metadata": {"path": spec["cwd"]}})
    client._cut = {}
    async def run():
        async with client.async_setup_kernel():
            deadline = None  # the notebook's time starts once the grader's own set-up cell has run
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                setup = cell.get("id") == "genimg-grading-begin"
                if setup:  # importing torch and the course: no student code, and slow on a loaded machine (-j N
                    # on 2 cores took over 15 s once, which cost a whole batch its grades); its own generous limit
                    client.timeout = max(SETUP_CELL_SECONDS, spec["timeout_cell"])
                else:
                    if deadline is None:
                        deadline = time.monotonic() + spec["timeout"]
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        state["stopped"] = f"the notebook ran past its time limit of {spec['timeout']} s"
                        state["stopped_at"] = index
                        break
                    client.timeout = max(1, min(spec["timeout_cell"], int(remaining) + 1))
                try:
                    await client.async_execute_cell(cell, index)
                except CellTimeoutError:
                    state["stopped_at"] = index
                    if setup:
                        state["stopped"] = (f"the grader's set-up (importing the course) took over {client.timeout} s:"
                                            " the machine is overloaded; grade again with fewer parallel jobs (-j)")
                    elif client.timeout < spec["timeout_cell"]:  # cut short by the notebook's own limit
                        state["stopped"] = (f"the notebook ran past its time limit of {spec['timeout']} s (in cell "
                                            f"{index}); later cells did not run")
                    else:
                        state["stopped"] = (f"cell {index} ran past its time limit of {client.timeout} s (an endless "
                                            "loop?); the kernel was stopped, later cells did not run")
                    break
                except DeadKernelError:
                    state["stopped_at"] = index
                    state["stopped"] = (f"the kernel died in cell {index} (os._exit, a crash, or out of memory); "
                                        "later cells did not run")
                    break
                finally:
                    collect(index, cell)
                    save()

    def collect(index, cell):
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if HIDDEN_TAG in cell.metadata.get("tags", []):
            for line in text.splitlines():
                if line.startswith(token + " "):
                    state["results"][cell.id[len("genimg-grading-"):]] = json.loads(line[len(token) + 1:])
            return
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for err in errors:
            state["errors"].append(f"cell {index}: {err.get('ename')}: {str(err.get('evalue'))[:300]}")
        cut = client._cut.get(index, 0)
        if cut:
            state["errors"].append(f"cell {index}: printed too much; {cut:,} characters of output were cut")
        state["outputs"][str(index)] = text[:MAX_OUTPUT_CHARS] + ("\n[output cut]" if len(text) > MAX_OUTPUT_CHARS or cut else "")

    try:
        asyncio.run(run())
    except Exception as err:  # noqa: BLE001 - kernel start failures and the like: report, don't crash
        state["stopped"] = state["stopped"] or f"the notebook could not be run: {type(err).__name__}: {err}"
        state["stopped_at"] = 0 if state["stopped_at"] is None else state["stopped_at"]
    save()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: genimg grade ... (this module's entry point is for the grader's worker processes)")
        sys.exit(2)
    sys.exit(run_worker(sys.argv[1]))
