"""`--workers N`: a KerasTuner chief and N workers on this machine.

KerasTuner's own distributed mode: every process runs the same search; the
one whose `KERASTUNER_TUNER_ID` contains "chief" serves the oracle over
gRPC at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`, the others ask it
for trials and report back. `supervise` starts them on 127.0.0.1 and a free
port, pins each worker to its own share of the CPU cores (affinity and
thread-pool sizes), writes their output to `<search>/logs/<id>.log`, ends
the chief once every worker is done (KerasTuner's chief keeps serving), and
stops them all on Ctrl-C or when one fails.

Workers on other machines: start the chief where the results should live,

    KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=0.0.0.0 \\
    KERASTUNER_ORACLE_PORT=8000 dlrecipes tune RECIPE ... --directory D

and on every other machine the same command with
`KERASTUNER_TUNER_ID=worker1` (unique per worker) and
`KERASTUNER_ORACLE_IP=<chief's address>`. Workers save their checkpoints
under their own `D`; the chief writes the tables and retrains the best
config when the search is done.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from dlrecipes.errors import RunError, UsageError

STOP_TIMEOUT = 10
CHILD_ENV = "DLRECIPES_TUNE_CHILD"  # set for --workers' chief and workers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kt_role():
    """"chief", "worker" or None from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if name not in os.environ:
            raise UsageError(f"KERASTUNER_ORACLE_IP is set but {name} is not")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] \
        else "worker"


def child_env(extra=None):
    """The environment of a child Python: this repository importable."""
    env = dict(os.environ)
    paths = [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                      if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra or {})
    return env


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when its parent dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def core_shares(workers, cores=None):
    """Disjoint, equal sets of CPU cores, one per worker (shared
    round-robin when there are more workers than cores)."""
    if cores is None:
        try:
            cores = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = list(range(os.cpu_count() or 1))
    if workers >= len(cores):
        return [[cores[i % len(cores)]] for i in range(workers)]
    k = len(cores) // workers
    return [cores[i * k:(i + 1) * k] for i in range(workers)]


def thread_env(n):
    """Thread-pool sizes for a process that owns `n` cores."""
    n = str(max(1, n))
    return {"OMP_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n,
            "TF_NUM_INTEROP_THREADS": str(min(2, int(n))),
            "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def _preexec(cores):
    def setup():
        die_with_parent()
        if cores is not None and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(0, cores)
            except OSError:
                pass

    return setup


def _tail(path, n=1):
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class _Proc:
    def __init__(self, name, popen, log):
        self.name, self.popen, self.log = name, popen, log

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(search, name, port, cores, threads):
    logs = os.path.join(search.directory, "logs")
    os.makedirs(logs, exist_ok=True)
    log_path = os.path.join(logs, f"{name}.log")
    env = child_env({"KERASTUNER_TUNER_ID": name,
                     "KERASTUNER_ORACLE_IP": "127.0.0.1",
                     "KERASTUNER_ORACLE_PORT": str(port),
                     CHILD_ENV: "1", **thread_env(threads)})
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tuning.distributed", search.directory],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_preexec(cores),
            cwd=os.getcwd())
    return _Proc(name, popen, log_path)


def supervise(search, poll=0.2):
    """Run the chief and `search.workers` workers until the search is
    done; RunError if one of them fails (all are stopped)."""
    port = free_port()
    shares = core_shares(search.workers)
    procs = []
    verbose = search.base.verbose
    try:
        procs.append(spawn(search, "chief", port, None, 1))
        for i, cores in enumerate(shares):
            procs.append(spawn(search, f"worker{i}", port, cores,
                               len(cores)))
        if verbose:
            print(f"Started a chief and {search.workers} workers on "
                  f"127.0.0.1:{port} (cores per worker: "
                  f"{', '.join(str(len(s)) for s in shares)}); logs in "
                  f"{os.path.join(search.directory, 'logs')}")
        chief, workers = procs[0], procs[1:]
        last = None
        while True:
            for w in workers:
                rc = w.popen.poll()
                if rc not in (None, 0):
                    raise RunError(f"{w.name} failed (exit {rc}); see "
                                   f"{w.log}: {_tail(w.log)}")
            if all(w.popen.poll() == 0 for w in workers):
                break
            rc = chief.popen.poll()
            if rc is not None:
                raise RunError(f"the chief stopped (exit {rc}) before the "
                               f"workers finished; see {chief.log}: "
                               f"{_tail(chief.log)}")
            if verbose:
                last = _progress(search, last)
            time.sleep(poll)
    finally:
        for p in reversed(procs):
            p.stop()
    if verbose:
        _progress(search, last)


def _progress(search, last):
    counts = {}
    for row in search.read_trials():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    if text and text != last:
        print(f"trials: {text}", flush=True)
    return text or last


def main(argv=None):
    """`python -m tuning.distributed DIR`: one chief or worker of the search
    in DIR (its role from KERASTUNER_TUNER_ID)."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import dataclasses

    import dlrecipes  # noqa: F401  (quiet imports, registrations)
    from tuning.runner import Search, execute
    from tuning.spec import read_spec

    directory = argv[0]
    spec = dataclasses.replace(read_spec(directory), workers=0)
    search = Search(spec, directory)
    role = kt_role()
    print(f"{os.environ.get('KERASTUNER_TUNER_ID')} ({role}) pid "
          f"{os.getpid()}", flush=True)
    code = 0
    try:
        execute(search, directory=directory)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # KerasTuner's chief leaves its gRPC server threads running: do not
    # wait for them at exit.
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
