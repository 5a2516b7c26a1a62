"""A hal backend over one torch device type: the base of the `torch.cpu`, `torch.cuda` and
`torch.npu` backends (backends/hal_torch) and of the `cuda` backend (backends/hal_cuda). A vendor
whose chip has a torch extension (torch_npu, intel_extension_for_pytorch...) subclasses it with
two class attributes and gets memory, copies, streams, events and ONNX execution."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ..backend import Backend, Executable
from ..device import DeviceSpec
from ..capability import CompileOptions, NodeInfo, Support
from ..memory import AllocationRule
from .devices import CPU_RULE, CUDA_RULE, accelerator_specs, host_spec
from .driver import TorchDeviceDriver

if TYPE_CHECKING:
    from ..device import Device

__all__ = ["TorchDeviceBackend"]

# DLPack device types (dlpack.h) of torch device types whose tensors hal imports without a copy
_DLPACK_TYPES = {"cuda": 2, "rocm": 10}


class TorchDeviceBackend(Backend):
    """Devices of torch device type `device_type` as hal devices `<name>:<index>`; lists none
    (quietly) where torch or the device is missing."""

    device_type: ClassVar[str]
    """torch's device type: "cpu", "cuda", "npu"."""

    def __init__(self) -> None:
        if self.device_type == "cpu":
            host = host_spec(self.name)
            self._specs = [host] if host is not None else []
        else:
            self._specs = accelerator_specs(self.device_type, self.name)

    @property
    def rule(self) -> AllocationRule:
        """How torch's allocator for this device type sizes a request."""
        return CPU_RULE if self.device_type == "cpu" else CUDA_RULE

    def devices(self) -> Sequence[DeviceSpec]:
        return list(self._specs)

    def open_device(self, index: int) -> TorchDeviceDriver:
        where = "cpu" if self.device_type == "cpu" else f"{self.device_type}:{index}"
        return TorchDeviceDriver(self._specs[index], where, self.rule)

    def dlpack_device_index(self, device_type: int, device_id: int) -> int | None:
        if self.device_type == "cpu" or device_type != _DLPACK_TYPES.get(self.device_type):
            return None
        return device_id if device_id < len(self._specs) else None

    # -- ONNX graphs: partitions run as torch operations ----------------------------------------
    def supports(self, node: NodeInfo, device: DeviceSpec) -> Support:
        from .executor import torch_supports

        return torch_supports(node)

    def compile(self, model, nodes: Sequence[NodeInfo], device: Device, options: CompileOptions) -> Executable:
        from .executor import TorchExecutable

        return TorchExecutable(model, device)
