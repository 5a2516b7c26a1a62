"""The kernel registry: listing, lookup errors, a user's C++ library built with g++ against
hal.ops.include_dir(), Python kernels (@hal.kernel), and bad input raising HalError subclasses."""
from __future__ import annotations

import shutil
import subprocess
import textwrap

import numpy as np
import pytest

import hal
from hal import ops

from . import references as ref

USER_KERNEL = textwrap.dedent(r"""
    #include <hal/kernel.h>

    // y = x * alpha + 1, float32 only
    static int32_t infer(hal_kernel_call* call) {
      if (call->num_inputs != 1) return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "AddOneScaled takes 1 input, got %d", call->num_inputs);
      hal_set_output(call, 0, call->inputs[0].dtype, call->inputs[0].ndim, call->inputs[0].shape);
      return HAL_OK;
    }
    static int32_t compute(hal_kernel_call* call) {
      const float* x = static_cast<const float*>(call->inputs[0].data);
      float* y = static_cast<float*>(call->outputs[0].data);
      float alpha = static_cast<float>(hal_attr_float(call, "alpha", 1.0));
      for (int64_t i = 0, n = hal_numel(&call->inputs[0]); i < n; ++i) y[i] = x[i] * alpha + 1.0f;
      return HAL_OK;
    }
    HAL_REGISTER_KERNEL("com.example", "AddOneScaled", "cpu,ascend", "float32", infer, compute);
""")


@pytest.fixture(scope="module")
def user_library(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ to build the user kernel library")
    folder = tmp_path_factory.mktemp("userlib")
    (folder / "user.cpp").write_text(USER_KERNEL)
    library = folder / "libuser.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ops.include_dir()}",
                    str(folder / "user.cpp"), "-o", str(library)], check=True, capture_output=True)
    loaded = ops.load_library(library)
    return library, loaded


def test_registry_lists_every_builtin_kernel_with_its_source():
    rows = ops.registry()
    ours = {(k.op, k.backend, k.dtype) for k in rows if k.domain == "com.hal"}
    for op in ("RMSNorm", "LayerNorm", "FusedSoftmax", "FusedGelu", "SwiGLU", "RoPE"):
        for backend in ("cpu", "ascend", "kunlun"):
            assert {(op, backend, d) for d in ("float32", "float16", "bfloat16")} <= ours
    assert ("QuantizedMatMul", "kunlun", "int16") in ours and ("QuantizedMatMul", "cpu", "int8") in ours
    rms = next(k for k in rows if k.op == "RMSNorm")
    assert rms.origin == "hal._C" and rms.source.endswith("csrc/kernels/normalization.cpp")


def test_missing_kernel_names_the_backends_that_have_it():
    with pytest.raises(hal.KernelNotFoundError, match=r"com.hal::RMSNorm for cpu/float64; registered for ascend \(.*\), cpu"):
        ops.rms_norm(np.ones((2, 3)), np.ones(3))
    with pytest.raises(hal.UnsupportedOpError):  # KernelNotFoundError is an UnsupportedOpError
        ops.find("com.nowhere", "Nothing", "cpu", "float32")


def test_user_library_registers_and_runs(user_library):
    library, loaded = user_library
    assert {(k.op, k.backend) for k in loaded} == {("AddOneScaled", "cpu"), ("AddOneScaled", "ascend")}
    assert all(k.origin == str(library.resolve()) for k in loaded)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(ops.call("com.example", "AddOneScaled", [x], {"alpha": 2.0}), x * 2 + 1)
    on_ascend = ops.call("com.example", "AddOneScaled", [hal.tensor(x, device="ascend:0")], {"alpha": 3.0})
    np.testing.assert_array_equal(on_ascend.numpy(), x * 3 + 1)
    with pytest.raises(hal.KernelNotFoundError, match="registered for ascend \\(float32\\), cpu \\(float32\\)"):
        ops.call("com.example", "AddOneScaled", [hal.tensor(x, device="kunlun:0")], {})


def test_loading_a_library_twice_is_a_duplicate(user_library):
    library, _ = user_library
    with pytest.raises(hal.KernelLibraryError, match="already registered"):
        ops.load_library(library)


def test_bad_libraries_raise(tmp_path):
    with pytest.raises(hal.KernelLibraryError, match="no such file"):
        ops.load_library(tmp_path / "missing.so")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(hal.KernelLibraryError, match="cannot load kernel library"):
        ops.load_library(junk)
    compiler = shutil.which("gcc") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no compiler")
    (tmp_path / "empty.c").write_text("int nothing(void) { return 0; }\n")
    empty = tmp_path / "libempty.so"
    subprocess.run([compiler, "-shared", "-fPIC", str(tmp_path / "empty.c"), "-o", str(empty)], check=True)
    with pytest.raises(hal.KernelLibraryError, match="no hal_register_kernels"):
        ops.load_library(empty)


def test_python_kernel_decorator():
    @hal.kernel("MyScale", domain="com.example.py", backends=["cpu", "ascend"], dtypes=["float32", "float16"])
    def my_scale(x, *, alpha: float):
        return x * x.dtype.type(alpha)

    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(ops.call("com.example.py", "MyScale", [x], {"alpha": 2.0}), x * 2)
    on_ascend = ops.call("com.example.py", "MyScale", [hal.tensor(x, device="ascend:0")], {"alpha": 0.5})
    np.testing.assert_array_equal(on_ascend.numpy(), x * 0.5)
    assert my_scale(x, alpha=3.0).dtype == np.float32  # still a plain function
    listed = [k for k in ops.registry() if k.domain == "com.example.py"]
    assert len(listed) == 4 and all(k.origin == "python" for k in listed)
    with pytest.raises(hal.KernelLibraryError, match="already registered"):
        hal.kernel("MyScale", domain="com.example.py", backends=["cpu"], dtypes=["float32"])(my_scale)
    with pytest.raises(hal.InvalidArgumentError):
        hal.kernel("Bad", domain="", backends=["cpu"], dtypes=["float32"])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: ops.rms_norm(np.ones((2, 3), np.float32), np.ones(4, np.float32)), hal.InvalidArgumentError, r"weight must have shape \(3,\)"),
        (lambda: ops.rms_norm(np.ones((2, 3), np.float32), np.ones(3, np.float16)), hal.UnsupportedDTypeError, "dtype of the input"),
        (lambda: ops.softmax(np.ones((4, 4), np.float32)[:, ::2]), hal.InvalidArgumentError, "not C-contiguous"),
        (lambda: ops.softmax(np.float32(1.0)), hal.InvalidArgumentError, "at least 1 dimension"),
        (lambda: ops.swiglu(np.ones((2, 3), np.float32)), hal.InvalidArgumentError, "must be even"),
        (lambda: ops.gelu(np.ones(3, np.float32), approximate="fast"), hal.InvalidArgumentError, "approximate"),
        (lambda: ops.rope(np.ones((2, 4), np.float32), np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)), hal.InvalidArgumentError, "cos must have shape"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((4, 2), np.int8), 1.0, 1.0), hal.InvalidArgumentError, r"b must have shape \(K, N\)"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int16), 1.0, 1.0), hal.UnsupportedDTypeError, "dtype of the input"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), 1.0, [1.0, 2.0, 3.0]), hal.InvalidArgumentError, "one per columns of b"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), 1.0, 1.0), hal.KernelNotFoundError, "float32"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), "big", 1.0), hal.InvalidArgumentError, "input 2 must be float32 values"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), 1.0, [1.0, "x"]), hal.InvalidArgumentError, "input 3 must be float32 values"),
        (lambda: ops.quantized_matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), 1.0, np.ones(2)), hal.UnsupportedDTypeError, "float32"),
        (lambda: ops.from_nc1hwc0(np.ones((1, 2, 3, 3, 16), np.float32), channels=40), hal.InvalidArgumentError, "channels"),
        (lambda: ops.to_nc1hwc0(np.ones((2, 3), np.float32)), hal.InvalidArgumentError, "NCHW"),
        (lambda: ops.from_fractal_nz(np.ones((2, 2, 16, 16), np.float32), rows=40, cols=20), hal.InvalidArgumentError, "rows and cols"),
        (lambda: ops.rms_norm(hal.tensor(np.ones((2, 3), np.float32), device="ascend:0"), hal.tensor(np.ones(3, np.float32), device="kunlun:0")), hal.InvalidArgumentError, "move them to one device"),
        (lambda: ops.set_num_threads(0), hal.InvalidArgumentError, ">= 1"),
        (lambda: ops.rms_norm(np.ones((2, 3), np.float32), np.ones(3, np.float32), epsilon="tiny"), hal.InvalidArgumentError, "attribute 'epsilon' must be a number, got 'tiny'"),
        (lambda: ops.gelu(np.ones(3, np.float32), approximate=1), hal.InvalidArgumentError, "attribute 'approximate' must be a str"),
        (lambda: ops.to_nc1hwc0(np.ones((1, 2, 3, 3), np.float32), c0=2.5), hal.InvalidArgumentError, "attribute 'c0' must be an int"),
        (lambda: ops.to_fractal_nz(np.ones((2, 3), np.float32), m0=2**80), hal.InvalidArgumentError, "attribute 'm0' must be an int"),
        (lambda: ops.rms_norm(hal.tensor(np.ones((2, 3), np.float32), device="ascend:0"), np.ones(3, np.float32), epsilon=[1]), hal.InvalidArgumentError, "must be a number"),
    ],
)
def test_bad_input_raises_hal_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_entry_points_take_numpy_scalars_lists_subclasses_and_tensors_alike():
    """hal.ops entry points run numpy arrays in C and hand everything else to hal.ops.call; both
    ways give the same numbers, and attribute values may be numpy scalars."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8), dtype=np.float32)
    w = rng.standard_normal(8, dtype=np.float32)
    expected = ops.find("com.hal", "RMSNorm", "cpu", "float32").run([x, w], {"epsilon": 1e-5})[0]
    np.testing.assert_array_equal(ops.rms_norm(x, w, epsilon=1e-5), expected)
    np.testing.assert_array_equal(ops.rms_norm(x, w, epsilon=np.float32(1e-5)), expected)

    class Sub(np.ndarray):
        pass

    np.testing.assert_array_equal(ops.rms_norm(x.view(Sub), w, epsilon=1e-5), expected)
    on_ascend = ops.rms_norm(hal.tensor(x, device="ascend:0"), hal.tensor(w, device="ascend:0"), epsilon=1e-5)
    assert isinstance(on_ascend, hal.DeviceTensor) and on_ascend.device.name == "ascend:0"
    np.testing.assert_allclose(on_ascend.numpy(), expected, rtol=1e-6, atol=1e-6)
    image = rng.standard_normal((1, 20, 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(ops.to_nc1hwc0(image, c0=np.int64(8)), ops.to_nc1hwc0(image, c0=8))
    assert ops.to_nc1hwc0(image, c0=np.int64(8)).shape == (1, 3, 2, 3, 8)
    # A list is not an array: the general path makes it one (float64 here, which has no kernel).
    with pytest.raises(hal.KernelNotFoundError, match="cpu/float64"):
        ops.softmax([[1.0, 2.0]])


def test_quantized_matmul_takes_its_scales_as_numbers_scalars_lists_or_arrays():
    """The scales are float32 values however they are written: the entry point makes float32
    arrays of Python numbers, numpy scalars, lists and tuples (as np.asarray(v, np.float32)) for
    numpy and DeviceTensor operands alike; float32 arrays pass as they are."""
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (5, 7), dtype=np.int8)
    b = rng.integers(-128, 128, (7, 3), dtype=np.int8)
    row_scales = [0.5, 0.25, 2.0, 1.0, 0.125]
    expected = ref.quantized_matmul(a, b, np.float32(0.1), np.asarray(row_scales[:3], np.float32))
    for a_scale in (0.1, np.float32(0.1), np.float64(0.1), [0.1], (0.1,), np.asarray(0.1, np.float32), np.asarray([0.1], np.float32)):
        for b_scale in (row_scales[:3], tuple(row_scales[:3]), np.asarray(row_scales[:3], np.float32)):
            np.testing.assert_array_equal(ops.quantized_matmul(a, b, a_scale, b_scale), expected)
    per_row = ops.quantized_matmul(a, b, row_scales, 1)
    np.testing.assert_array_equal(per_row, ref.quantized_matmul(a, b, np.asarray(row_scales, np.float32), np.float32(1)))
    on_kunlun = ops.quantized_matmul(hal.tensor(a, device="kunlun:0"), hal.tensor(b, device="kunlun:0"), 0.1, row_scales[:3])
    assert isinstance(on_kunlun, hal.DeviceTensor) and on_kunlun.device.name == "kunlun:0"
    np.testing.assert_array_equal(on_kunlun.numpy(), expected)


def test_entry_point_runs_cpp_and_python_kernels_and_checks_its_arguments(user_library):
    from hal import _C

    scaled = _C.entry_point("com.example", "AddOneScaled", [("alpha", "float")], ops.find, ops.call)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(scaled(x, 2), x * 2 + 1)  # the user's C++ kernel, found once and kept
    np.testing.assert_array_equal(scaled(x, 0.5), x * 0.5 + 1)
    np.testing.assert_array_equal(scaled(hal.tensor(x, device="ascend:0"), 3.0).numpy(), x * 3 + 1)
    with pytest.raises(hal.InvalidArgumentError, match="takes its inputs then 1 attribute value"):
        scaled(2.0)

    @hal.kernel("Twice", domain="com.example.entry", backends=["cpu"], dtypes=["float32"])
    def twice(x, *, times: int):
        return x * np.float32(2 * times)

    doubled = _C.entry_point("com.example.entry", "Twice", [("times", "int")], ops.find, ops.call)
    np.testing.assert_array_equal(doubled(x, 2), x * 4)  # a Python kernel goes the general way
    with pytest.raises(ValueError, match="kind must be int, float or str"):
        _C.entry_point("com.example.entry", "Twice", [("times", "integer")], ops.find, ops.call)


def test_fuzz_every_kernel_with_random_shapes_and_dtypes():
    """Random ranks, sizes and dtypes for every op: each call returns or raises a HalError."""
    rng = np.random.default_rng(0)
    dtypes = [np.float32, np.float16, np.float64, np.int8, np.int16, np.int32, np.uint8, np.bool_]
    entry_points = [
        lambda *a: ops.rms_norm(*a[:2]), lambda *a: ops.layer_norm(*a[:3]), lambda *a: ops.softmax(a[0]),
        lambda *a: ops.gelu(a[0]), lambda *a: ops.swiglu(a[0]), lambda *a: ops.rope(*a[:3]),
        lambda *a: ops.quantized_matmul(*a[:4]), lambda *a: ops.to_nc1hwc0(a[0]),
        lambda *a: ops.from_nc1hwc0(a[0], channels=int(rng.integers(-2, 40))),
        lambda *a: ops.to_fractal_nz(a[0]), lambda *a: ops.from_fractal_nz(a[0], rows=int(rng.integers(-1, 40)), cols=int(rng.integers(-1, 40))),
    ]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        args = []
        for _ in range(4):
            shape = tuple(int(s) for s in rng.integers(0, 7, rng.integers(0, 6)))
            args.append(np.zeros(shape, dtypes[rng.integers(len(dtypes))]))
        fn = entry_points[rng.integers(len(entry_points))]
        try:
            fn(*args)
            outcomes["ok"] += 1
        except hal.HalError:
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_kernel_run_into_given_outputs_checks_their_count_and_kind():
    kernel = ops.find("com.hal", "FusedSoftmax", "cpu", "float32")
    x = np.ones((2, 4), np.float32)
    out = np.zeros_like(x)
    assert kernel.run([x], {}, (out,))[0] is out
    np.testing.assert_array_equal(out, np.full((2, 4), 0.25, np.float32))
    for given, message in [([], "has 1 output\\(s\\), got 0"), ([out, out], "has 1 output\\(s\\), got 2"),
                           ([np.zeros((2, 5), np.float32)], "output 0 must be"), ([3], "output 0 must be")]:
        with pytest.raises(hal.InvalidArgumentError, match=message):
            kernel.run([x], {}, given)
