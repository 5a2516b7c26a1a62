"""ONNX schemas of the com.hal ops (and of Python kernels given infer=), so that onnx's checker and
shape inference know them; their type and shape inference is the kernel's own infer(). Other
ops of users' domains (C++ kernels from load_library) get no schema: onnx checks nothing about
them and their outputs stay untyped. kernel_supports answers capability queries from the registry.
"""
from __future__ import annotations

import functools
import threading

from ..dtypes import DType
from .registry import on_registry_change

__all__ = ["HAL_OP_ATTRIBUTES", "ensure_registered", "kernel_supports"]

HAL_OP_ATTRIBUTES: dict[str, dict[str, str]] = {
    "RMSNorm": {"epsilon": "float"},
    "LayerNorm": {"epsilon": "float"},
    "FusedSoftmax": {"axis": "int"},
    "FusedGelu": {"approximate": "string"},
    "SwiGLU": {"axis": "int"},
    "RoPE": {"interleaved": "int"},
    "QuantizedMatMul": {},
    "Linear": {},
    "CachedAttention": {"length": "int", "scale": "float"},
    "ToNC1HWC0": {"c0": "int"},
    "FromNC1HWC0": {"channels": "int"},
    "ToFractalNZ": {"m0": "int", "n0": "int"},
    "FromFractalNZ": {"rows": "int", "cols": "int"},
}
"""The attributes each com.hal op reads, by ONNX attribute type. Names differ from every ai.onnx op
(FusedSoftmax, not Softmax): onnx's reference evaluator requires op names unique across domains."""

_lock = threading.Lock()
_registered: set[tuple[str, str]] = set()




def ensure_registered() -> None:
    """Registers the com.hal schemas (version 1 of the domain) with onnx, once."""
    import onnx
    # onnx's reference evaluator indexes every registered schema by name once, at import, and
    # refuses names defined in two domains (onnx 1.23 has its own SwiGLU): let it index first.
    import onnx.reference.op_run  # noqa: F401

    from .registry import HAL_DOMAIN

    from .registry import python_kernels

    with _lock:
        wanted = [(HAL_DOMAIN, op, attributes) for op, attributes in HAL_OP_ATTRIBUTES.items()]
        # Python kernels given infer= type their outputs too; their attributes are the function's
        # keyword-only parameters.
        wanted += [(k.domain, k.op, _signature_attributes(k.fn)) for k in python_kernels() if k.has_infer]
        for domain, op, attributes in wanted:
            if (domain, op) in _registered:
                continue
            _registered.add((domain, op))
            try:
                onnx.defs.get_schema(op, 1, domain)
            except onnx.defs.SchemaError:
                onnx.defs.register_schema(_schema(domain, op, attributes))


def _signature_attributes(fn) -> dict[str, str]:
    import inspect

    kinds = {float: "float", int: "int", str: "string", "float": "float", "int": "int", "str": "string"}
    found = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            found[name] = kinds.get(parameter.annotation, "float")
    return found


def _schema(domain: str, op: str, attributes: dict[str, str]):
    import onnx
    from onnx.defs import OpSchema

    kinds = {"float": OpSchema.AttrType.FLOAT, "int": OpSchema.AttrType.INT, "string": OpSchema.AttrType.STRING}
    types = [f"tensor({t})" for t in ("float", "float16", "bfloat16", "double", "int8", "int16", "int32", "int64",
                                       "uint8", "uint16", "uint32", "uint64", "bool")]
    schema = OpSchema(
        op, domain, 1,
        f"{domain}::{op}: a hal kernel (csrc/kernels/; hal.ops); types and shapes come from the kernel's infer().",
        inputs=[OpSchema.FormalParameter("inputs", "T", param_option=OpSchema.FormalParameterOption.Variadic,
                                         is_homogeneous=False)],
        outputs=[OpSchema.FormalParameter("outputs", "T", param_option=OpSchema.FormalParameterOption.Variadic,
                                          is_homogeneous=False)],
        type_constraints=[("T", types, "any tensor type")],
        attributes=[OpSchema.Attribute(name, kinds[kind], "", required=False) for name, kind in attributes.items()],
    )

    def infer(ctx) -> None:
        specs = _infer_outputs(domain, op, list(attributes), ctx)
        for i, (dtype, shape) in enumerate(specs or ()):
            if i < ctx.get_num_outputs():
                ctx.set_output_type(i, onnx.helper.make_tensor_type_proto(DType(dtype).onnx, list(shape)))

    schema.set_type_and_shape_inference_function(infer)
    return schema


def _infer_outputs(domain: str, op: str, attribute_names: list[str], ctx):
    """The kernel's infer() on the node's input types and shapes: [(dtype, dims)] where a dim is a
    size, a symbolic name or None (unknown); None when an input's rank is unknown or no kernel
    takes that dtype.

    Kernels infer from concrete sizes, so an unknown or symbolic input dim ("batch") is given as
    a stand-in size, twice with different stand-ins: an output dim that equals its stand-in both
    times is that input dim, one that is the same both times is a real size, and one that moves
    with the stand-ins is unknown."""
    from ..errors import HalError
    from .registry import find, registry

    inputs = []  # (dtype, [size or symbol or None])
    for i in range(ctx.get_num_inputs()):
        t = ctx.get_input_type(i)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.tensor_type.shape.dim]
        try:
            inputs.append((str(DType.from_onnx(t.tensor_type.elem_type)), dims))
        except HalError:
            return None
    if not inputs:
        return None
    attrs = {}
    for name in attribute_names:
        attribute = ctx.get_attribute(name)
        if attribute is not None:
            attrs[name] = _attribute_value(attribute)
    backends = sorted({k.backend for k in registry() if (k.domain, k.op, k.dtype) == (domain, op, inputs[0][0])})
    if not backends:
        return None
    kernel = find(domain, op, "cpu" if "cpu" in backends else backends[0], inputs[0][0])
    unknown = [(i, axis) for i, (_, dims) in enumerate(inputs) for axis, d in enumerate(dims) if not isinstance(d, int)]

    def infer(stand_in: int):
        # one stand-in per distinct symbol (two inputs' "batch" stay equal), one per unknown dim
        sizes: dict = {}
        concrete = []
        for i, (dtype, dims) in enumerate(inputs):
            shape = []
            for axis, d in enumerate(dims):
                if isinstance(d, int):
                    shape.append(d)
                else:
                    key = d if d is not None else (i, axis)
                    shape.append(sizes.setdefault(key, stand_in + 16 * len(sizes)))
            concrete.append((dtype, tuple(shape)))
        try:
            return kernel.infer(concrete, attrs), {v: k for k, v in sizes.items()}
        except HalError as exc:
            if unknown:  # a stand-in the kernel rejects (not divisible...): leave the shape unknown
                return None, {}
            import onnx

            raise onnx.shape_inference.InferenceError(f"[ShapeInferenceError] {exc}") from None

    first, names = infer(1009)
    if not unknown:
        return first
    if first is None:
        return None
    second, _ = infer(2003)
    if second is None or len(second) != len(first):
        return None
    specs = []
    for (dtype, a), (_, b) in zip(first, second):
        dims = []
        for x, y in zip(a, b):
            if x == y:
                dims.append(x)
            elif x in names:
                key = names[x]
                dims.append(key if isinstance(key, str) else None)
            else:
                dims.append(None)
        specs.append((dtype, dims))
    return specs


def _attribute_value(attribute):
    import onnx

    value = onnx.helper.get_attribute_value(attribute)
    return value.decode() if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=4096)
def kernel_supports(domain: str, op: str, backend: str, dtype: str | None):
    """(True, "") when `backend` has a kernel for (domain, op, dtype); (False, reason) naming the
    backends and dtypes that have one; None when no kernel of that (domain, op) exists at all."""
    from .registry import registry

    rows = [k for k in registry() if (k.domain, k.op) == (domain, op)]
    if not rows:
        return None
    if dtype is not None and any(k.backend == backend and k.dtype == dtype for k in rows):
        return True, ""
    if dtype is None and any(k.backend == backend for k in rows):
        return True, ""
    by_backend: dict[str, list[str]] = {}
    for k in rows:
        by_backend.setdefault(k.backend, []).append(k.dtype)
    listed = ", ".join(f"{b} ({', '.join(d)})" for b, d in sorted(by_backend.items()))
    return False, f"no kernel {domain}::{op} for {backend}/{dtype}; registered for {listed}"



on_registry_change(kernel_supports.cache_clear)  # answers computed before a kernel was added are stale