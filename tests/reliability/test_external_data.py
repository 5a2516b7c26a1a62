"""External data confined to the model's folder: every location, range and file kind that could
read outside it, block, or read the wrong bytes is refused before any byte is read, and a file
swapped between the check and the read is caught (hal.graph.external_data). The basic cases
(absolute, '..', a link out, a truncated file) are in tests/graph/test_model.py."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hal
from hal.graph import external_data, model as model_module
from hal.graph.model import load_model

WEIGHT = np.arange(64, dtype=np.float32).reshape(8, 8)


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save(folder, **entries):
    """model.onnx in folder with w in weights.bin; `entries` then overwrite its external_data keys."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(_model(), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    if entries:
        proto = onnx.load_model(path, load_external_data=False)
        tensor = proto.graph.initializer[0]
        kept = {e.key: e.value for e in tensor.external_data if e.key not in entries}
        del tensor.external_data[:]
        for key, value in {**kept, **entries}.items():
            if value is not None:
                tensor.external_data.add(key=key, value=value)
        onnx.save_model(proto, path)
    return path


@pytest.fixture
def no_reads(monkeypatch):
    """Fails the test if any external byte is read (hal reads only through _DataFile.read)."""
    def refuse(*args):
        raise AssertionError("external data was read although the model had to be refused")

    monkeypatch.setattr(external_data._DataFile, "read", refuse)


def _count_reads(monkeypatch) -> list[tuple[int, int]]:
    """(offset, length) of every external read, as they happen."""
    reads = []
    real_read = external_data._DataFile.read

    def counted(self, where):
        reads.append((where.offset, where.length))
        return real_read(self, where)

    monkeypatch.setattr(external_data._DataFile, "read", counted)
    return reads


def test_hal_reads_the_bytes_itself_through_one_descriptor(tmp_path, monkeypatch):
    path = _save(tmp_path)

    def reopen_by_name(*args, **kwargs):
        raise AssertionError("onnx's loader reopens data files by name after hal checked them")

    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", reopen_by_name)
    reads = _count_reads(monkeypatch)
    model = load_model(path)
    np.testing.assert_array_equal(numpy_helper.to_array(model.proto.graph.initializer[0]), WEIGHT)
    assert model.proto.graph.initializer[0].data_location == TensorProto.DEFAULT
    assert reads == [(0, WEIGHT.nbytes)]


@pytest.mark.parametrize("offset, length, match", [
    ("-8", None, "not a whole number"),
    ("abc", None, "not a whole number"),
    ("0x10", None, "not a whole number"),
    (" 8", None, "not a whole number"),
    ("1e3", None, "not a whole number"),
    (str(2**63), None, "beyond any file's size"),
    (str(2**64 + 7), None, "beyond any file's size"),
    (str(2**63 - 100), "256", "past any file's end"),
    ("0", "-1", "not a whole number"),
    ("0", str(2**70), "beyond any file's size"),
    ("8", "256", "the file has 256 bytes"),
    ("0", "512", "take 256 bytes"),
    ("0", "128", "take 256 bytes"),
])
def test_bad_offsets_and_lengths_are_refused(tmp_path, no_reads, offset, length, match):
    path = _save(tmp_path, offset=offset, length=length or "256")
    with pytest.raises(hal.InvalidModelError, match=match) as caught:
        load_model(path)
    assert "tensor 'w'" in str(caught.value)


def test_a_missing_length_means_the_tensors_size(tmp_path):
    path = _save(tmp_path, length=None)
    with open(tmp_path / "weights.bin", "ab") as f:
        f.write(b"\xff" * 16)  # bytes past the tensor are not read into it
    np.testing.assert_array_equal(numpy_helper.to_array(load_model(path).proto.graph.initializer[0]), WEIGHT)


def test_a_key_given_twice_is_refused(tmp_path, no_reads):
    path = _save(tmp_path)
    proto = onnx.load_model(path, load_external_data=False)
    proto.graph.initializer[0].external_data.add(key="location", value="other.bin")
    onnx.save_model(proto, path)
    with pytest.raises(hal.InvalidModelError, match="'location' twice"):
        load_model(path)


def test_a_checksum_key_is_ignored(tmp_path):
    path = _save(tmp_path, checksum="0" * 40)  # onnx defines no checksum check: nor does hal
    np.testing.assert_array_equal(numpy_helper.to_array(load_model(path).proto.graph.initializer[0]), WEIGHT)


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path, no_reads):
    outside = tmp_path / "outside"
    path = _save(tmp_path / "model", location="sub/weights.bin")
    outside.mkdir()
    (tmp_path / "model" / "weights.bin").rename(outside / "weights.bin")
    (tmp_path / "model" / "sub").symlink_to(outside)
    with pytest.raises(hal.InvalidModelError, match="outside the model's folder"):
        load_model(path)
    # a folder link that stays inside is refused too: no link is followed at all
    shutil.move(outside, tmp_path / "model" / "real")
    (tmp_path / "model" / "sub").unlink()
    (tmp_path / "model" / "sub").symlink_to("real")
    with pytest.raises(hal.InvalidModelError, match="folder 'sub' is a symbolic link"):
        load_model(path)


def test_a_link_to_a_device_file_is_refused(tmp_path, no_reads):
    path = _save(tmp_path)
    (tmp_path / "weights.bin").unlink()
    (tmp_path / "weights.bin").symlink_to("/dev/zero")
    with pytest.raises(hal.InvalidModelError, match="outside the model's folder"):
        load_model(path)


def test_a_fifo_is_refused_without_blocking(tmp_path, no_reads):
    path = _save(tmp_path)
    (tmp_path / "weights.bin").unlink()
    os.mkfifo(tmp_path / "weights.bin")
    with pytest.raises(hal.InvalidModelError, match="not a regular file \\(a FIFO\\)"):
        load_model(path)  # opening a FIFO with no writer would block: the test would hang


def test_a_socket_is_refused(tmp_path, no_reads):
    path = _save(tmp_path)
    (tmp_path / "weights.bin").unlink()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "weights.bin"))
        with pytest.raises(hal.InvalidModelError, match="a socket"):
            load_model(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_in_the_folder_is_refused(tmp_path, no_reads):
    path = _save(tmp_path)
    (tmp_path / "weights.bin").unlink()
    os.mknod(tmp_path / "weights.bin", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    with pytest.raises(hal.InvalidModelError, match="a character device"):
        load_model(path)


def test_a_folder_is_refused(tmp_path, no_reads):
    path = _save(tmp_path)
    (tmp_path / "weights.bin").unlink()
    (tmp_path / "weights.bin").mkdir()
    with pytest.raises(hal.InvalidModelError, match="a folder"):
        load_model(path)


# --- a file changed between the check and the read ---------------------------------------------


def _swap_after_check(monkeypatch, swap):
    """Runs swap() after hal checked the external data and before it reads it: load_model checks
    the graph (onnx.checker, by path) in between."""
    real_check = model_module._check

    def check_then_swap(model, source):
        real_check(model, source)
        swap()

    monkeypatch.setattr(model_module, "_check", check_then_swap)


def test_a_file_swapped_for_a_link_out_is_not_read(tmp_path, monkeypatch):
    path = _save(tmp_path / "model")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"S" * 256)
    data = tmp_path / "model" / "weights.bin"

    def swap():
        data.unlink()
        data.symlink_to(secret)

    _swap_after_check(monkeypatch, swap)
    reads = _count_reads(monkeypatch)
    with pytest.raises(hal.InvalidModelError, match="symbolic link"):
        load_model(path)
    assert reads == []


def test_a_file_swapped_for_another_is_not_read(tmp_path, monkeypatch, no_reads):
    path = _save(tmp_path)
    data = tmp_path / "weights.bin"

    def swap():  # same name, same size, other bytes: only the file's identity tells
        (tmp_path / "new.bin").write_bytes(b"S" * 256)
        os.replace(tmp_path / "new.bin", data)

    _swap_after_check(monkeypatch, swap)
    with pytest.raises(hal.InvalidModelError, match="changed after hal checked it"):
        load_model(path)


def test_a_file_truncated_after_the_check_is_not_read(tmp_path, monkeypatch, no_reads):
    path = _save(tmp_path)
    _swap_after_check(monkeypatch, lambda: os.truncate(tmp_path / "weights.bin", 100))
    with pytest.raises(hal.InvalidModelError, match="changed after hal checked it"):
        load_model(path)


def test_a_file_that_shrinks_during_the_read_is_refused(tmp_path, monkeypatch):
    path = _save(tmp_path)
    real_read = external_data._DataFile.read

    def shrinking(self, where):  # after every check, on the descriptor hal already holds
        os.truncate(tmp_path / "weights.bin", 100)
        return real_read(self, where)

    monkeypatch.setattr(external_data._DataFile, "read", shrinking)
    with pytest.raises(hal.InvalidModelError, match="changed while the model loaded"):
        load_model(path)


# --- over 2 GiB -----------------------------------------------------------------------------------

_BIG_ROWS, _ROW = 2**20 + 2**11, 512  # (1 Mi + 2 Ki) rows x 512 float32: 2 GiB + 4 MiB
_BIG_BYTES = _BIG_ROWS * _ROW * 4


@pytest.mark.skipif(os.environ.get("HAL_SKIP_BIG_MODEL_TESTS") == "1", reason="HAL_SKIP_BIG_MODEL_TESTS=1")
def test_a_model_over_2_gib_loads_and_runs_a_slice_of_it(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    if free < 4 * 2**30:  # sparse, but a filesystem without holes writes every byte
        pytest.skip(f"needs 4 GiB free in {tmp_path} for a sparse 2 GiB data file, has {free / 2**30:.1f} GiB")
    data = tmp_path / "weights.bin"
    with open(data, "wb") as f:
        f.truncate(_BIG_BYTES)  # a hole: mostly zeros, little disk
        f.seek(_BIG_BYTES - _ROW * 4)
        f.write(np.full(_ROW, 7, np.float32).tobytes())
    table = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[_BIG_ROWS, _ROW])
    table.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(_BIG_BYTES))):
        table.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)], "big",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2, _ROW])],
        [table],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "big.onnx")
    # In a fresh process, so that its peak memory is this model's alone.
    code = (
        "import resource, numpy as np, hal\n"
        f"session = hal.InferenceSession({str(tmp_path / 'big.onnx')!r}, devices=['cpu'])\n"
        f"rows = session.run(None, {{'ids': np.array([0, {_BIG_ROWS - 1}])}})[0]\n"
        "print(rows[:, 0].tolist(), float(rows.sum()))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed, peak = done.stdout.splitlines()[:2]
    assert printed == f"[0.0, 7.0] {7.0 * _ROW}"  # the first row from the hole, the last as written
    # the weights are read once and handed on, not copied for every step (the bound)
    assert int(peak) < 6 * 2**30, f"peak RSS {int(peak) / 2**30:.2f} GiB for a {_BIG_BYTES / 2**30:.2f} GiB model"
