"""Default worker slot counts, derived from the CPUs this process may use.

The SDK's defaults (100 workflow tasks, 100 activities) assume a machine with room to run
them. One worker process runs its journeys and its async activities on one event-loop thread,
so on a small, busy machine 100 tasks taken at once wait for CPU past their timeouts (a
workflow task has 10 s), the server hands them out again and the work is done twice: measured
on 2 cores under a wake-up peak, 100/100 never drained 3,000 enrollments in 25 minutes while
10/20 drained them in 383 s (BENCHMARKS.md, peak wake-up). On a bigger machine the process is
less likely to be starved of its core, so the defaults grow with the CPU count up to the SDK's.
"""

from __future__ import annotations

import os

# Per usable CPU: 2 cores give the 10 workflow tasks and 20 activities measured above.
WORKFLOW_TASKS_PER_CPU = 5
ACTIVITIES_PER_CPU = 10
# The SDK's own defaults are the ceiling: a single process gains nothing past them.
SDK_MAX_SLOTS = 100


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset), else the
    machine's count. A CFS quota (`docker --cpus`) is not seen: set the slots explicitly."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workflow_task_slots(cpus: int | None = None) -> int:
    count = usable_cpus() if cpus is None else cpus
    return min(SDK_MAX_SLOTS, WORKFLOW_TASKS_PER_CPU * max(1, count))


def default_activity_slots(cpus: int | None = None) -> int:
    count = usable_cpus() if cpus is None else cpus
    return min(SDK_MAX_SLOTS, ACTIVITIES_PER_CPU * max(1, count))
