"""The jobs layer: the commands' work, and the one place that knows run folders.

``sweep.train_sweep`` trains, ``evaluate_run.evaluate_run`` evaluates,
``reproduce.reproduce`` runs the whole study and ``preflight.check`` sizes a
long run before it starts; :mod:`run_folder` names every file they write.
They call the libraries below them (data, models, training, evaluation) and
the vocabulary (config, presets, catalog, images); nothing below imports them.
"""
