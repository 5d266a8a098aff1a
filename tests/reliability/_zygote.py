"""Fork server of the SIGKILL test: pays the imports once, then forks one extraction
per request, so the test can kill many real processes in a few seconds.

Protocol (one JSON object per line): the test writes a request
``{"cache": DIR, "pause": null | "before_rename" | "mid_write"}``; the server forks a
child that runs :func:`extract_features` into ``DIR`` and answers ``{"pid": PID}``, then
``{"pid": PID, "signal": N}`` or ``{"pid": PID, "exit": N}`` once the child has ended.
The test sends the SIGKILL itself. ``pause`` holds the child in a window of the final
write (tmp file complete but not yet renamed, or half written) and drops a marker file
``DIR/paused-PID`` so the test can kill it there deterministically.

Usage: ``python _zygote.py IMG_DIR CSV_PATH BACKBONE CHUNK_SIZE``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

torch.set_num_threads(1)

import h5py  # noqa: E402

from cactus_features import extract_features  # noqa: E402


def _pause(marker: Path) -> None:
    marker.touch()
    time.sleep(60)


def _child(request: dict, img_dir: str, csv_path: str, backbone: str, chunk: int) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stdout is the protocol pipe
    marker = Path(request["cache"]) / f"paused-{os.getpid()}"
    if request.get("pause") == "before_rename":
        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if str(dst).endswith(".h5"):
                _pause(marker)  # the tmp file is complete and fsynced, not yet renamed
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    elif request.get("pause") == "mid_write":
        real_create = h5py.Group.create_dataset

        def create_dataset(self, name, *a, **k):
            out = real_create(self, name, *a, **k)
            if name == "ids":  # embeddings written, labels/split/attributes not yet
                self.file.flush()
                _pause(marker)
            return out

        h5py.Group.create_dataset = create_dataset
    extract_features(
        img_dir,
        backbone,
        labels=csv_path,
        weights="none",
        cache_dir=request["cache"],
        chunk_size=chunk,
        batch_size=chunk,
        workers=1,
        quiet=True,
    )
    return 0


def main() -> None:
    img_dir, csv_path, backbone, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request, img_dir, csv_path, backbone, chunk)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            answer = {"pid": pid, "signal": os.WTERMSIG(status)}
        else:
            answer = {"pid": pid, "exit": os.WEXITSTATUS(status)}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
