"""One trial of a sweep (zoo/training/sweep.py): a `python -m zoo.fit` subprocess that the pruner watches.

A trial stays an ordinary zoo run, with its own run dir under the sweep dir
(SWEEP_DIR/trial-NNN/<time>/) and its log beside it (trial-NNN.log), so crashes and DDP stay
contained and the run can be inspected, resumed or re-tested like any other.

How a running trial reports to the pruner: the trial's CSV logger writes metrics.csv after every
logging call (Lightning calls `logger.save()` each time), so the sweep process reads that file
every `poll_seconds`. Each new value of the sweep's metric (one per validation epoch) is reported
to Optuna as the next step (1, 2, ...), which is what W&B calls an iteration. When the pruner
says stop, the subprocess is terminated (its checkpoints stay whole: every write is atomic) and
the trial is marked pruned. Reading the file keeps zoo.fit unaware of Optuna; the cost is that a
trial whose loggers leave out csv cannot be pruned (the sweep says so). The trial's final value
is its results.json metric, the one the table ranks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


def override(key: str, value: Any) -> str:
    """Return `key=value` with the value in the YAML flow syntax that zoo.fit (and wandb agent) pass."""
    return f"{key}={json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else value}"


def metric_values(path: Path, metric: str) -> list[float]:
    """Return the values of `metric` in a metrics.csv, in the order they were logged.

    The file may be mid-write (Lightning rewrites it when a new column appears): a last line
    without its newline is left for the next read.
    """
    try:
        text = path.read_text()
    except OSError:
        return []
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    values = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            values.append(float(row[metric]))
        except (KeyError, TypeError, ValueError):  # another metric's row, or not logged yet
            continue
    return values


class TrialFailed(ZooError):
    """A trial's zoo.fit exited with an error or without the sweep's metric (the sweep goes on)."""


class Objective:
    """Optuna's objective for a sweep: suggest the parameters, run zoo.fit, report, prune, return the metric."""

    Failed = TrialFailed

    def __init__(self, sweep: dict[str, Any], sweep_dir: Path, extra: list[str],
                 suggest: Callable[[Any], dict[str, Any]], poll_seconds: float = 1.0) -> None:
        """`suggest(trial)` returns one trial's parameters (the sweep file's search space, asked of Optuna)."""
        self.sweep, self.sweep_dir, self.extra, self.poll_seconds = sweep, sweep_dir, extra, poll_seconds
        self.suggest = suggest
        self.metric = sweep["metric"]["name"]

    def __call__(self, trial: Any) -> float:
        params = self.suggest(trial)
        trial.set_user_attr("params", params)
        name = f"trial-{trial.number:03d}"
        start, value = time.perf_counter(), None
        try:
            value = self.run(trial, name, params)
            trial.set_user_attr("status", "ok")
        except (KeyboardInterrupt, SystemExit):
            trial.set_user_attr("interrupted", True)  # `zoo sweep --resume` runs it again
            raise
        finally:  # the row says how long it ran, whatever ended it
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
            status = trial.user_attrs.get("status", "interrupted")
            last = trial.user_attrs.get("last_value")
            print(f"{name}  {status}  {self.metric}={value if status == 'ok' else last}  "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
        return value

    def run(self, trial: Any, name: str, params: dict[str, Any]) -> float:
        """Run the trial's zoo.fit subprocess to its end, reporting each new metric value; return the final value."""
        import optuna

        args = [*self.sweep["base_args"], *(override(k, v) for k, v in params.items()), *self.extra,
                f"run.dir={self.sweep_dir}", f"run.name={name}"]
        env = {**os.environ, "WANDB_RUN_GROUP": self.sweep["name"]}  # W&B groups the sweep's runs under its name
        for var in ("ZOO_RUN_DIR", "WANDB_SERVICE"):  # each trial is a run of its own
            env.pop(var, None)
        log = self.sweep_dir / f"{name}.log"
        with open(log, "w") as f:
            # in the sweep's process group: a Ctrl-C or a kill of the group stops the trial with the sweep
            proc = subprocess.Popen([sys.executable, "-m", "zoo.fit", *args], stdout=f, stderr=subprocess.STDOUT,
                                    env=env)
            try:
                reported = self.watch(trial, proc, name)
            except BaseException:
                stop(proc)
                raise
        run_dirs = sorted((self.sweep_dir / name).glob("*/config.yaml"))
        if run_dirs:
            trial.set_user_attr("run_dir", str(run_dirs[-1].parent))
        if reported is None:
            raise optuna.TrialPruned()
        if proc.returncode:
            lines = [x for x in log.read_text().splitlines() if x.strip()]
            trial.set_user_attr("status", f"failed ({proc.returncode}): {lines[-1][:120] if lines else ''}")
            raise TrialFailed(f"{name} failed, see {log}")
        results = sorted((self.sweep_dir / name).glob("*/results.json"))
        res = json.loads(results[-1].read_text()) if results else {}
        value = {**res.get("val", {}), **res.get("test", {})}.get(self.metric)
        if value is None:
            trial.set_user_attr("status", f"no metric {self.metric}")
            raise TrialFailed(f"{name} logged no {self.metric}")
        if reported == 0 and not isinstance(trial.study.pruner, optuna.pruners.NopPruner):
            print(f"{name}: no {self.metric} in metrics.csv while it ran, so early_terminate could not judge it "
                  "(keep a csv logger in the trials)", flush=True)
        return float(value)

    def watch(self, trial: Any, proc: subprocess.Popen, name: str) -> int | None:
        """Report the trial's new metric values until its process ends; return how many, or None when pruned."""
        reported = 0
        while True:
            try:
                proc.wait(timeout=self.poll_seconds)
                done = True
            except subprocess.TimeoutExpired:
                done = False
            files = sorted((self.sweep_dir / name).glob("*/metrics.csv"))
            values = metric_values(files[-1], self.metric) if files else []
            for value in values[reported:]:
                reported += 1
                trial.report(value, step=reported)
                trial.set_user_attr("last_value", value)
                if not done and trial.should_prune():
                    stop(proc)
                    trial.set_user_attr("status", f"pruned at step {reported}")
                    return None
            if done:
                return reported


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a trial's process: SIGTERM (Lightning then stops its DDP workers too), SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
