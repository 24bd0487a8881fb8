"""The fast path: many optimizer steps per Lightning loop iteration, with the ordinary loop's results.

Lightning's training loop costs about 0.7 ms of host Python per batch: hooks called on every
callback, progress counters, the data fetcher, the logger connector. For a small model that is
as much as the step itself. Most of that work does nothing on most batches: no log is due, no
checkpoint, no validation. The fast path skips it there and only there.

How a chunk runs:

- Lightning runs a batch as usual. In that batch's `on_train_batch_end`, `FastPath` asks
  Lightning's own predicates whether anything would happen at the end of this batch or at the
  start of the next one: a log flush (`log_every_n_steps`; the LR monitor logs at a batch
  start), a checkpoint every N steps, a validation check, `max_steps`, the end of the epoch,
  `should_stop`.
- If nothing would, it pulls the next batch from Lightning's own data fetcher and trains on it as
  Lightning's per-batch optimisation does (`training_step`, `zero_grad`, backward, gradient
  clipping, accumulation, the optimizer step and their hooks, DDP's gradient sync): through
  `_AutomaticOptimization.run` itself, or, in the common setup (`direct_setup`: one device, no
  accumulation, no GradScaler, default optimisation hooks), by making the same calls directly
  (`FastPath._step`). It steps the LR schedulers and advances every counter exactly as the loop
  would: batch progress, `_batches_that_stepped`, the optimizer's counts, the fetcher, the logger
  connector. In the direct setup, the batches Lightning's loop still trains itself (each chunk's
  first) take `_step` too, in place of `_AutomaticOptimization.run`.
- It repeats until something is due. The last batch of the chunk then finishes through
  Lightning's loop, so its `on_train_batch_end` hooks, log flush, validation and checkpoints see
  the same state as in the ordinary loop.
- Validation does the same with `validation_step`, so an epoch's validation is one pass of the
  loop whatever its number of batches.
- The loops' result collections skip the device walk of each `self.log` where it would move
  nothing, and Lightning's default profiler hands out one empty context rather than a new one at
  every hook it dispatches (zoo/training/lean.py).

The effect: the same weights, optimizer states, logs and checkpoints (loop state included) as the
ordinary loop, bit for bit on the CPU, with `on_train_batch_start/end` and
`on_validation_batch_start/end` called once per chunk instead of once per batch
(tests/test_fastpath.py). The per-step hooks (`on_before_backward`, `on_before_optimizer_step`,
...) still run at every step, so the NaN guard checks every loss.

It falls back to the ordinary loop, and says why in one line at start-up, where it cannot prove
the same results: a callback or model hook that acts on every batch, manual optimisation (the
GAN), data not served by zoo's in-memory loader, wall-clock limits (`max_time`, time-based
validation or checkpoints), a strategy it was not checked with. `fast_path: on` forces it past
the reasons that only concern batch hooks; `fast_path: off` always takes the ordinary loop.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.precision.precision import Precision as FabricPrecision
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loops.optimization.automatic import ClosureResult
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, Strategy
from lightning.pytorch.trainer import call
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from zoo.data.base import InMemoryLoader
from zoo.errors import ConfigError, choose
from zoo.models.base import ZooModel
from zoo.training.lean import lean_profiler, lean_results

TRAIN_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")
VAL_BATCH_HOOKS = ("on_validation_batch_start", "on_validation_batch_end")
# Hooks Lightning's per-batch optimisation calls itself, so they run at every step inside a chunk too.
STEP_HOOKS = ("on_before_zero_grad", "on_before_backward", "on_after_backward", "on_before_optimizer_step")
# Module hooks of a step whose defaults do nothing or only call the optimizer, as `FastPath._step` assumes.
DEFAULT_STEP_HOOKS = (*STEP_HOOKS, "optimizer_zero_grad", "backward", "optimizer_step")
# Lightning's callbacks whose batch hooks the chunk boundaries account for (checkpoints every N steps,
# logging at flush steps), or that only draw (progress bars). A callback of its own declares the same
# with a class attribute `fast_path_safe = True` (see `chunk_safe`).
KNOWN_TRAIN = (ModelCheckpoint, LearningRateMonitor, TQDMProgressBar, RichProgressBar)
KNOWN_VAL = (TQDMProgressBar, RichProgressBar)
FAST_PATH_MODES = ("auto", "on", "off")


def fast_path_mode(value: Any) -> str:
    """Return the checked `fast_path` setting: auto, on or off (true and false mean on and off)."""
    value = {"true": "on", "false": "off"}.get(str(value).lower(), str(value))
    return choose("fast_path", value, FAST_PATH_MODES)


def chunk_safe(callback: L.Callback, known: tuple[type, ...] = KNOWN_TRAIN) -> bool:
    """Return True for a callback whose batch hooks may run once per chunk: one of Lightning's `known`, or
    one that declares `fast_path_safe = True` (its batch hooks act only at the events a chunk ends at, or
    only record state that is read there)."""
    return isinstance(callback, known) or getattr(callback, "fast_path_safe", False) is True


def blockers(trainer: L.Trainer, module: Any, own: tuple[L.Callback, ...] = ()) -> tuple[str | None, str | None]:
    """Return (hard, soft): why the fast path cannot run at all, and why it cannot prove the same results."""
    name = getattr(type(module), "registry_name", type(module).__name__)
    if not module.automatic_optimization:
        return f"model '{name}' optimises manually in its training_step", None
    if trainer.fast_dev_run:
        return "fast_dev_run runs single batches", None
    loader = trainer.train_dataloader
    if not isinstance(loader, InMemoryLoader):
        return None, f"the train loader ({type(loader).__name__}) streams its data; the fast path is for data in memory"
    for hook in TRAIN_BATCH_HOOKS:
        if is_overridden(hook, module):
            return None, f"model '{name}' runs {hook} at every batch"
    for cb in (cb for cb in trainer.callbacks if cb not in own):
        if getattr(cb, "_train_time_interval", None) or type(cb).__name__ == "Timer":
            return None, f"callback {type(cb).__name__} acts on wall-clock time"
        hooks = [h for h in TRAIN_BATCH_HOOKS if is_overridden(h, cb)]
        if hooks and not chunk_safe(cb):
            return None, f"callback {type(cb).__name__} runs {hooks[0]} at every batch"
    if trainer._val_check_time_interval is not None:
        return None, "val_check_interval is a wall-clock time"
    if not isinstance(trainer.strategy, (SingleDeviceStrategy, DDPStrategy)):
        return None, f"strategy {type(trainer.strategy).__name__} is not checked with the fast path"
    return None, None


def direct_setup(trainer: L.Trainer, module: Any) -> bool:
    """Return True when `FastPath` may make Lightning's per-batch calls directly (`_step`, `_validation_step`):
    one device and no wrapper around the module, no gradient accumulation, a precision plugin without a
    GradScaler whose only part in a step is its forward context, the module's optimisation hooks at
    Lightning's defaults (which do nothing or call the optimizer), and Lightning's no-op profiler."""
    plugin, loop = trainer.precision_plugin, trainer.fit_loop.epoch_loop.automatic_optimization
    return (type(trainer.strategy) is SingleDeviceStrategy and trainer.strategy.model is module
            and (type(plugin) is Precision or type(plugin) is MixedPrecision and plugin.scaler is None)
            and trainer.accumulate_grad_batches == 1 and len(trainer.optimizers) == 1 and not loop._skip_backward
            and not any(is_overridden(hook, module) for hook in DEFAULT_STEP_HOOKS)
            and not is_overridden("on_train_batch_start", trainer.strategy, Strategy)
            and isinstance(trainer.profiler, PassThroughProfiler) and "_current_fx_name" in vars(module))


def batches_in_place(trainer: L.Trainer, module: Any) -> bool:
    """Return True when Lightning's per-batch input conversion and device transfer leave a batch as it is:
    the loader's tensors already on the device, and no hook or precision plugin that converts them."""
    loader, device = trainer.train_dataloader, trainer.strategy.root_device
    hooks = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
    datamodule = trainer.datamodule
    return (isinstance(loader, InMemoryLoader) and getattr(loader.x, "device", None) == device
            and loader.y.device == device
            and type(trainer.precision_plugin).convert_input is FabricPrecision.convert_input
            and not any(is_overridden(h, module) for h in hooks)
            and not (datamodule is not None and any(is_overridden(h, datamodule) for h in hooks)))


class FastPath(L.Callback):
    """Runs the batches between two of Lightning's per-batch events as one loop iteration (see the module doc).

    Keep it first among the callbacks: the ones after it see each chunk's end in `on_train_batch_end`.
    """

    def __init__(self, mode: str = "auto", verbose: bool = True) -> None:
        self.mode = fast_path_mode(mode)
        self.verbose = verbose  # say at start-up which path runs, and why (fit(..., verbose=False) does not)
        self.train = self.val = False  # chunking of training batches / of validation batches, decided at start
        self.running = False  # True while the batches after a chunk's first run (tests read it)
        self.batches = 0  # batches that ran inside chunks, for the record

    # -- the decision -----------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        hard, soft = blockers(trainer, pl_module, (self,)) if self.mode != "off" else (None, "fast_path=off")
        if hard and self.mode == "on":
            raise ConfigError(f"fast_path=on cannot run: {hard}; use fast_path=auto or off")
        self.train = not hard and (not soft or self.mode == "on")
        val_hooks = [cb for cb in trainer.callbacks if cb is not self and any(is_overridden(h, cb) for h in VAL_BATCH_HOOKS)]
        self.val = self.train and not any(is_overridden(h, pl_module) for h in VAL_BATCH_HOOKS) and all(
            chunk_safe(cb, KNOWN_VAL) for cb in val_hooks)
        self._direct = direct_setup(trainer, pl_module)
        self._in_place = batches_in_place(trainer, pl_module)
        self._schedulers = bool(trainer.lr_scheduler_configs)
        self._checkpoints = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        self._hooks = {h: [cb for cb in trainer.callbacks if is_overridden(h, cb)] for h in STEP_HOOKS}
        # Lightning formats a profiler label for every callback at every hook, implemented or not: while
        # Lightning's own optimisation runs a chunk's batches, `trainer.callbacks` lists only those with a
        # per-step hook (and this one, for whoever looks for it).
        self._step_callbacks = [cb for cb in trainer.callbacks if cb is self or any(cb in cbs for cbs in self._hooks.values())]
        # Without a clip value, ZooModel's and Lightning's configure_gradient_clipping do nothing.
        defaults = (ZooModel.configure_gradient_clipping, L.LightningModule.configure_gradient_clipping)
        self._clip = bool(trainer.gradient_clip_val) or type(pl_module).configure_gradient_clipping not in defaults
        self._args = {"training_step": is_param_in_hook_signature(pl_module.training_step, "batch_idx", min_args=2),
                      "validation_step": is_param_in_hook_signature(pl_module.validation_step, "batch_idx", min_args=2)}
        if self.train:
            loop = trainer.fit_loop.epoch_loop
            lean_results(loop._results, loop.val_loop._results)  # no device walk at each self.log (lean.py)
            lean_profiler(trainer, True)  # no generator per hook dispatch (lean.py)
            if self._direct:  # the batches Lightning's loop trains itself (each chunk's first) take the direct calls too
                loop.automatic_optimization.run = partial(self._run, trainer)
            how = "validation batches too" if self.val else "validation batch by batch"
            line = f"on: optimizer steps run in chunks between Lightning's per-batch events ({how})"
            line += f"; forced although {soft}" if soft else "; fast_path=off for the ordinary loop"
        else:
            line = f"off: {hard or soft}"
        if self.verbose:
            rank_zero_only(print)(f"zoo: fast path {line}")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        vars(trainer.fit_loop.epoch_loop.automatic_optimization).pop("run", None)  # Lightning's own `run` again
        lean_profiler(trainer, False)

    on_exception = on_train_end

    # -- training ---------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if not self.train or self.running or self._due(trainer):
            return
        callbacks = trainer.callbacks
        if not self._direct:
            trainer.callbacks = self._step_callbacks
        self.running = True
        try:
            self._train_chunk(trainer)
        finally:
            trainer.callbacks, self.running = callbacks, False

    def _due(self, trainer: L.Trainer) -> bool:
        """Return True when Lightning or a callback acts at the end of this batch or the start of the next."""
        loop = trainer.fit_loop.epoch_loop
        if trainer.should_stop or loop._is_training_done or loop._should_check_val_fx(trainer.fit_loop._data_fetcher):
            return True
        steps = self._direct or not loop._should_accumulate()
        if steps and trainer._logger_connector.should_update_logs:  # a flush after this batch
            return True
        every = trainer.log_every_n_steps  # ... or at the next batch's start, where the LR monitor logs
        if every and (loop._batches_that_stepped + steps + 1) % every == 0:
            return True
        step = trainer.global_step
        return any(cb._every_n_train_steps >= 1 and step % cb._every_n_train_steps == 0
                   and not cb._should_skip_saving_checkpoint(trainer) for cb in self._checkpoints)

    def _train_chunk(self, trainer: L.Trainer) -> None:
        """Train on the following batches until one is due, as `_TrainingEpochLoop.advance` and
        `on_advance_end` would, leaving out what `_due` showed has nothing to do there: the batch hooks,
        the log flush, the validation check, the loggers' save on `should_stop`."""
        loop, fetcher, logs = trainer.fit_loop.epoch_loop, trainer.fit_loop._data_fetcher, trainer._logger_connector
        progress, module, direct = loop.batch_progress, trainer.lightning_module, self._direct
        loop.val_loop.restarting = False  # as each advance() sets it
        while True:
            # The rest of this batch, but for the logger connector's copy of the step's metrics into
            # trainer.callback_metrics: those are recomputed whenever read, and copied at the chunk's end.
            progress.increment_completed()
            if self._schedulers:
                loop.update_lr_schedulers("step", update_plateau_schedulers=True)
            if direct or not loop._should_accumulate():
                loop._batches_that_stepped += 1
            if trainer.received_sigterm and trainer.world_size == 1:  # (with DDP, Lightning's next loop iteration
                raise SIGTERMException                                    # broadcasts it, so all ranks stop together)
            loop.on_iteration_done()
            # The next batch. DDP's per-batch SIGTERM broadcast is skipped, on every rank alike.
            batch, _, _ = next(fetcher)
            batch_idx = loop.batch_idx + 1
            progress.is_last_batch = fetcher.done
            if not self._in_place:
                batch = self._prepare(trainer, module, batch)
            progress.increment_ready()
            logs.on_batch_start(batch)
            if not direct:
                call._call_strategy_hook(trainer, "on_train_batch_start", batch, batch_idx)
            progress.increment_started()
            args = (batch, batch_idx) if self._args["training_step"] else (batch,)
            if direct:
                self._step(trainer, module, args)
            else:
                with trainer.profiler.profile("run_training_batch"):
                    kwargs = OrderedDict(zip(("batch", "batch_idx"), args))
                    loop.automatic_optimization.run(trainer.optimizers[0], batch_idx, kwargs)
            progress.increment_processed()
            if self._schedulers:
                loop.update_lr_schedulers("step", update_plateau_schedulers=False)
                if loop._num_ready_batches_reached():
                    loop.update_lr_schedulers("epoch", update_plateau_schedulers=False)
            self.batches += 1
            if self._due(trainer):
                return

    @staticmethod
    def _prepare(trainer: L.Trainer, module: Any, batch: Any) -> Any:
        """Return `batch` converted and moved to the device as Lightning's fetch does it (`batches_in_place`
        says when nothing would change)."""
        batch = trainer.precision_plugin.convert_input(batch)
        batch = module._on_before_batch_transfer(batch, dataloader_idx=0)
        return call._call_strategy_hook(trainer, "batch_to_device", batch, dataloader_idx=0)

    def _run(self, trainer: L.Trainer, optimizer: Any, batch_idx: int, kwargs: OrderedDict) -> dict:
        """Stand in for `_AutomaticOptimization.run` in the `direct_setup`: `_step`, and the outputs Lightning's
        loop passes to the `on_train_batch_end` hooks."""
        output = self._step(trainer, trainer.lightning_module, tuple(kwargs.values()))
        result = ClosureResult.from_training_step_output(output)
        return {} if result.loss is None else result.asdict()

    def _step(self, trainer: L.Trainer, module: Any, args: tuple) -> Any:
        """Train on one batch as `_AutomaticOptimization.run` does in the `direct_setup`: the same calls in
        the same order, without the dispatch layers between them (closures, LightningOptimizer, the strategy
        and precision wrappers, hooks left at Lightning's defaults, profiler labels). Return what
        `training_step` returned."""
        optimizer = trainer.optimizers[0]
        counts = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress.optimizer
        counts.step.increment_ready()
        output = self._call(module, "training_step", trainer.precision_plugin.train_step_context(), args)
        # Lightning's ClosureResult divides a returned tensor by accumulate_grad_batches (1 here) and keeps a
        # detached copy for the batch-end hooks: x / 1 is x, bit for bit, and so is its gradient.
        loss = output if isinstance(output, torch.Tensor) else ClosureResult.from_training_step_output(output).closure_loss
        counts.zero_grad.increment_ready()
        self._hook(trainer, module, "on_before_zero_grad", optimizer)
        counts.zero_grad.increment_started()
        optimizer.zero_grad()
        counts.zero_grad.increment_completed()
        if loss is not None:
            self._hook(trainer, module, "on_before_backward", loss)
            loss.backward()
            self._hook(trainer, module, "on_after_backward")
        self._hook(trainer, module, "on_before_optimizer_step", optimizer)
        if self._clip:
            module.configure_gradient_clipping(optimizer, trainer.gradient_clip_val, trainer.gradient_clip_algorithm)
        optimizer.step()
        counts.step.increment_completed()
        return output

    def _hook(self, trainer: L.Trainer, module: Any, name: str, *args: Any) -> None:
        """Call hook `name` of the callbacks that implement it, as `call._call_callback_hooks` does."""
        callbacks = self._hooks[name]
        if callbacks:
            outer = module._current_fx_name
            module.__dict__["_current_fx_name"] = name  # a plain attribute: what nn.Module's __setattr__ sets
            for cb in callbacks:
                getattr(cb, name)(trainer, module, *args)
            module.__dict__["_current_fx_name"] = outer

    @staticmethod
    def _call(module: Any, name: str, context: Any, args: tuple) -> Any:
        """Call the module's step `name` in `context`, as the strategy's step method does for one device."""
        outer = module._current_fx_name
        module.__dict__["_current_fx_name"] = name
        with context:
            output = getattr(module, name)(*args)
        module.__dict__["_current_fx_name"] = outer
        return output

    # -- validation -------------------------------------------------------------------------------
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        val_loop = trainer.fit_loop.epoch_loop.val_loop
        if self.val and not self.running and not val_loop._data_fetcher.done and val_loop.num_dataloaders == 1:
            self.running = True
            try:
                self._validate_chunk(trainer, val_loop)
            finally:
                self.running = False

    def _validate_chunk(self, trainer: L.Trainer, val_loop: Any) -> None:
        """Run the remaining validation batches as `_EvaluationLoop.run` and `_evaluation_step` would,
        without the batch hooks (only progress bars implement them here) and the logger connector's
        copy of step metrics (as in training)."""
        fetcher, logs, progress = val_loop._data_fetcher, trainer._logger_connector, val_loop.batch_progress
        module, direct, takes_idx = trainer.lightning_module, self._direct, self._args["validation_step"]
        while not fetcher.done:
            progress.increment_completed()
            if not trainer.sanity_checking:
                val_loop._has_run = True
                logs.update_eval_step_metrics(val_loop._seen_batches_per_dataloader[0])
                val_loop._seen_batches_per_dataloader[0] += 1
            if trainer.received_sigterm:  # as _evaluation_step: each rank on its own
                raise SIGTERMException
            val_loop.on_iteration_done()
            batch, batch_idx, _ = next(fetcher)
            progress.is_last_batch = fetcher.done
            if not self._in_place:
                batch = self._prepare(trainer, module, batch)
            progress.increment_ready()
            logs.on_batch_start(batch, None)
            progress.increment_started()
            args = (batch, batch_idx) if takes_idx else (batch,)
            if direct:
                self._call(module, "validation_step", trainer.precision_plugin.val_step_context(), args)
            else:
                call._call_strategy_hook(trainer, "validation_step", *args)
            progress.increment_processed()
            self.batches += 1

