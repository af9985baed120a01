"""``hydra/sweeper=gen`` (the default): Hydra's basic sweeper, without composing every job twice.

Before it launches a batch, Hydra's sweeper composes each job's config to find bad input early
(``validate_batch_is_legal``), and throws the configs away; gen's launchers then compose each one
again, in this process, and check it before the first job starts (jobs.compose_jobs).  That second
pass is the same check and more, so with a gen launcher this sweeper leaves it at that: a
multirun's first job no longer waits for every config to be composed twice.  With any other
launcher (Hydra's own basic one, say) it checks the batch as Hydra does.
"""
from typing import Sequence

from hydra_plugins.gen_launchers.hydra_internals import basic_sweeper


class GenSweeper(basic_sweeper.BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if not getattr(self.launcher, "composes_every_job_first", False):  # jobs.ComposesEveryJobFirst
            super().validate_batch_is_legal(batch)
