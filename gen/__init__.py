"""gen: Hydra-configured experiments on why deep networks generalize."""
import os

__version__ = "0.6.0"

# OpenMP threads that wait for work sleep instead of spinning (unless the user chose otherwise).  A
# lockstep group trains on every core it may use (gen.training.loop.cpu_threads); with spinning threads
# a step on two threads ran 5-10x slower than on one whenever another process held a core (measured
# on the 2-core machine at load 4-5), with sleeping ones about as fast as on one.  libgomp reads this
# once, when torch loads it: it must be set before torch is imported, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
