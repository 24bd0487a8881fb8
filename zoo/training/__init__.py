"""Training machinery around `lightning.Trainer`, used by zoo.fit:

- config.py: the config schema, YAML loading and validation, and the data and model a config names;
- callbacks.py: the callbacks of a run (`build_callbacks`), the NaN guard and the sample writer;
- evaluate.py: a model measured on its data's test split (`zoo test`, the pretrained cards' metrics);
- fastpath.py: several optimizer steps per Lightning loop iteration, with the ordinary loop's results;
- lean.py: Lightning's bookkeeping without the work that changes nothing (result collections, profiler, NVML probe);
- checkpoint.py: every saving decision: best/last checkpoints, atomic writes, what a checkpoint holds;
- resume.py: exact resume (RNG states and logger cursors) and the check of a checkpoint against its resume;
- rundir.py: when a run dir appears (config.yaml, the loggers built and started), after a resume's restore;
- environment.py: config values read from the environment, saved as written;
- loggers.py: csv, tensorboard and wandb loggers that continue a resumed run;
- sweep.py: W&B-format sweeps run locally.

May import evaluation/, models/, data/ and the contracts; never hub/, cli/ or zoo.fit.
"""
