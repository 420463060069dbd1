"""The workflow sandbox, without its per-payload detour where the data converter ignores context.

Before it encodes or decodes a payload of a workflow task, the SDK (temporalio 1.35) asks the
workflow instance which serialization context the payload belongs to, so that a converter or
codec that depends on it (say, a key per activity type) gets it. In the sandbox that question
is answered by compiling and running a snippet of code inside the sandbox, with its import
hooks installed and removed around it: for every payload sequence, three times on the way in
and three on the way out of every activation. In py-spy profiles of the runtime benchmark
this was a large share of what each extra payload costs (summaries, local-activity inputs
and results, signals).

The answer only matters to a converter that changes with its context. `DataConverter`
returns itself from `with_context` when none of its parts takes a context, and then the SDK
uses that same converter whatever the answer was. For such a converter (Journeyman's, with
no codec and no external storage), `ContextFreeSandboxedRunner` answers "no context"
without entering the sandbox. Everything the sandbox exists for (restricted imports,
non-deterministic calls stopped, a module state per run) is the SDK's own `_Instance`, which
still runs every activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import temporalio.bridge.proto.workflow_activation as activation
import temporalio.bridge.proto.workflow_completion as completion
from temporalio import workflow
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Probes for `ignores_context`: one of each context a workflow's payloads are given.
_PROBES: tuple[SerializationContext, ...] = (
    WorkflowSerializationContext(namespace="probe", workflow_id="probe"),
    ActivitySerializationContext(
        namespace="probe",
        activity_id="probe",
        activity_type="probe",
        activity_task_queue="probe",
        workflow_id="probe",
        workflow_type="probe",
        is_local=False,
    ),
)


def ignores_context(converter: DataConverter) -> bool:
    """True when every payload of a workflow is converted the same whatever its context."""
    if converter.external_storage is not None:
        return False  # stores by workflow and activity, whatever its converters do
    return all(converter.with_context(probe) is converter for probe in _PROBES)


class _ContextFreeInstance(WorkflowInstance):
    """The sandboxed instance, answering "no context" from outside the sandbox."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner

    def activate(
        self, act: activation.WorkflowActivation
    ) -> completion.WorkflowActivationCompletion:
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return None

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        # Read only by external storage, which `ignores_context` rules out.
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> workflow.Info:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        # What the deadlock detector reads the stuck thread's frames from.
        return self._inner.get_thread_id()


@dataclass(frozen=True)
class ContextFreeSandboxedRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` for a worker whose data converter `ignores_context`."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


def sandboxed_runner(
    restrictions: SandboxRestrictions, converter: DataConverter
) -> SandboxedWorkflowRunner:
    """The sandbox with `restrictions`; context-free when `converter` allows it."""
    if ignores_context(converter):
        return ContextFreeSandboxedRunner(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions)
