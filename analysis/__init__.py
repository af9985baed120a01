"""analysis: turn sweep folders of runs into tables, the studies' figures, measure rankings and a report.

    python -m analysis outputs/sweeps/quickstart          # collect + plot + rank + report
    python -m analysis status outputs/sweeps/quickstart   # what finished, what failed and why

Modules: ``status`` finds run folders and says what state each is in; ``collect`` reads the finished
ones into tables; ``figures`` draws each study's figures; ``rank`` scores every measure against the
generalization gap; ``report`` writes one page; ``callback`` runs it all when a Hydra multirun ends.
"""
