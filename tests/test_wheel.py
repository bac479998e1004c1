"""The wheel an integrator installs runs: every file the server reads at run time (WSDL,
Alembic histories, portal templates) is package data, not a file of the source tree.

The wheel is built offline from a copy of the project's sources (no stale ``build/``), installed
not editable into a folder of its own and started as ``xds serve`` from a folder outside the
source tree, with the source tree on no import path.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import requests

from tests.support.server import ROOT, free_port

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "xds", "config", "storage", "registry", "audit", "repository",
           "client", "access", "transactions", "bindings", "portal", "server")


def build_wheel(out: Path) -> Path:
    src = out / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(out / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (out / "dist").glob("dmp_xds-*.whl")
    return wheel


def test_the_installed_wheel_serves_without_the_source_tree(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "bindings/wsdl/registry.wsdl" in names and "bindings/wsdl/repository.wsdl" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    # -S: no .pth file of the venv (its editable install maps the packages to the source tree);
    # the installed wheel, then the venv's dependencies, and nothing else on the path.
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([sys.executable, "-S", "-c", "import bindings, server.cli; print(bindings.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-S", str(target / "bin" / "xds"), "serve", "--port", str(port),
                                 "--data-dir", str(elsewhere / "data"), "--workers", "1"],
                                cwd=elsewhere, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert proc.poll() is None, log.read_text(errors="replace")
        assert requests.get(base + "/health", timeout=5).status_code == 200
        wsdl = requests.get(base + "/registry?wsdl", timeout=5)
        assert wsdl.status_code == 200 and b"wsdl/soap12" in wsdl.content and base.encode() in wsdl.content
        assert requests.get(base + "/repository?wsdl", timeout=5).status_code == 200
        assert requests.get(base + "/portal/login", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text(errors="replace")
