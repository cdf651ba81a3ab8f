"""A study in PostgreSQL, as several machines would share it: the test starts its own server (a
throw-away cluster on a unix socket in a temporary folder, no TCP), runs a sweep into it from one
"machine" (sweep folder), goes on from another, and reads the trials back with Optuna's API.
Skipped, with the reason, where PostgreSQL or psycopg2 is not installed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netspec.cli import main

from sweepspecs import write_sweep_spec

BIN = Path(os.environ.get("NETSPEC_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server's tools as the postgres user then."""
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh cluster on a unix socket; yields its SQLAlchemy URL (database `sweeps`); stopped after."""
    if not (BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL is not installed ({BIN}/initdb missing; NETSPEC_PG_BIN names another place)")
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install 'netspec[postgres]')")
    folder = Path(tempfile.mkdtemp(prefix="netspec-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", 54329
    try:
        run = {"check": True, "timeout": 120, "capture_output": True}
        subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), **run)
        options = f"-k {folder} -c listen_addresses='' -p {port}"
        start = [
            str(BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ]
        try:  # the server's output goes to its log: a pipe would be held open by it, and run() would wait
            subprocess.run(
                _as_postgres(start), check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            conn = psycopg2.connect(dbname="postgres", user="postgres", host=str(folder), port=port)
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE sweeps")
            conn.close()
            yield f"postgresql+psycopg2://postgres@/sweeps?host={folder}&port={port}"
        finally:
            subprocess.run(
                _as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]),
                timeout=120,
                check=False,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_study_in_postgresql_is_shared_between_sweeps(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna", reason="optuna is not installed")
    spec = write_sweep_spec(tmp_path, trials=2)
    with postgres_server() as url:
        assert main(["sweep", str(spec), "--storage", url, "--out", str(tmp_path / "machine_a")]) == 0
        # another machine joins the same study: it runs only what is left of 3
        assert main(["sweep", str(spec), "--storage", url, "--trials", "3", "--out", str(tmp_path / "machine_b")]) == 0
        study = optuna.load_study(study_name="clf", storage=url)
        trials = study.get_trials()
        assert [t.state.name for t in trials] == ["COMPLETE"] * 3
        where = [Path(t.user_attrs["run_dir"]).parts[-4] for t in trials]
        assert where == ["machine_a", "machine_a", "machine_b"]
        assert not (tmp_path / "machine_a" / "study.db").exists()  # nothing stored beside the runs
