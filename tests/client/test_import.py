"""``xds import``: Ctrl-C within a second, a clean resume point, progress with rate and time left."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from client.demo import generate

ROOT = Path(__file__).resolve().parents[2]


def folder_of_cda(tmp_path: Path) -> tuple[Path, int]:
    generate(tmp_path / "in", patients=3)
    for p in (tmp_path / "in").rglob("*.pdf"):
        p.unlink()
    return tmp_path / "in", len(list((tmp_path / "in").rglob("*.xml")))


def start(folder: Path, registered: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.client.slow_import", str(folder), str(registered)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_import_ctrl_c_stops_within_a_second_and_the_rerun_resumes(tmp_path):
    folder, n = folder_of_cda(tmp_path)
    registered = tmp_path / "registered.txt"
    proc = start(folder, registered)
    deadline = time.monotonic() + 60
    while not (registered.exists() and registered.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - sent_at
    assert proc.returncode == 130, out + err
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert "interrupted=True" in out and "Traceback" not in err
    journal = (folder / ".xds-import.journal").read_text()
    assert journal.endswith("\n")  # no torn line: the journal is the resume point
    time.sleep(0.6)  # let a submission that was in flight land, as a server would finish it
    first = registered.read_text().splitlines()
    assert 2 <= len(first) < n

    again = start(folder, registered)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    uids = [line.split(" ")[0] for line in registered.read_text().splitlines()]
    assert len(uids) == len(set(uids)) == n  # nothing twice, nothing missing
    assert "failed=0" in out
    assert "doc/s" in err and f"{n}/{n}" in err and "<" in err  # tqdm: rate, and elapsed<remaining
