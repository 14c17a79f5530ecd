"""The fault soak (`depthcharge soak`, `make soak`): the daemon against the paper exchange with faults on a
seeded schedule, then the figures that must be zero. See docs/soak.md.

    schedule.plan(seconds, seed)   the faults, when and for how long
    runner.SoakRunner(config).run  the processes, the faults, the measurements → summary.SoakSummary
    measures                       the must-be-zero figures as pure functions of the evidence
    evidence                       reading the daemon's logs, the database and the exchange
"""

from depthcharge.soak.runner import SoakConfig, SoakRunner, run_soak
from depthcharge.soak.summary import SoakSummary

__all__ = ["SoakConfig", "SoakRunner", "SoakSummary", "run_soak"]
