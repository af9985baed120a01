"""A researcher's own package, outside gen: a measure, a model and a dataset gen runs without a fork.

Put this folder on PYTHONPATH (``PYTHONPATH=examples/my_research``) and its config folder on Hydra's
search path (``hydra.searchpath=[file://$PWD/examples/my_research/conf]``); see README, "Your own
measure, model and data"."""
