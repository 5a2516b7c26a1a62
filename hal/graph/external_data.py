"""External data: tensors whose bytes live in files beside the model. hal reads them only from
regular files inside the model's folder, each long enough for the bytes it is said to hold.
"""
from __future__ import annotations

import pathlib

import onnx

from ..errors import InvalidModelError
from .walk import _all_tensors

__all__: list[str] = []

_EXTERNAL = onnx.TensorProto.EXTERNAL


def _external_tensors(
    proto: onnx.ModelProto, path: pathlib.Path | None, source: str
) -> tuple[list[onnx.TensorProto], pathlib.Path | None]:
    """The tensors `proto` keeps in external data, each checked, and the folder they are read from
    (None for a model that did not come from a file)."""
    external = [t for t in _all_tensors(proto) if t.data_location == _EXTERNAL]
    # Data files are looked up beside the path as given (a symlinked model finds its data next to
    # the link, as onnx.load does); containment is judged on fully resolved paths.
    folder = None if path is None else path.absolute().parent
    if external:
        if folder is None:
            raise InvalidModelError(
                f"{source} keeps tensor {external[0].name!r} in external data ({_location(external[0])!r}), "
                "which can only be found next to the model file: pass the path of the .onnx file instead"
            )
        for tensor in external:
            _check_external_location(tensor, folder, source)
    return external, folder


def _location(tensor: onnx.TensorProto) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _check_external_location(tensor: onnx.TensorProto, folder: pathlib.Path, source: str) -> None:
    """External data must be a regular file inside the model's folder, large enough for the tensor."""
    location = _location(tensor)
    what = f"{source}: tensor {tensor.name!r} keeps its data in {location!r}"
    if not location:
        raise InvalidModelError(f"{source}: tensor {tensor.name!r} is marked external but names no file")
    as_posix, as_windows = pathlib.PurePosixPath(location), pathlib.PureWindowsPath(location)
    if as_posix.is_absolute() or as_windows.is_absolute() or as_windows.drive or location.startswith(("/", "\\")):
        raise InvalidModelError(
            f"{what}, an absolute path; hal reads external data only from files next to the model, "
            "named relative to its folder"
        )
    if ".." in as_windows.parts:  # PureWindowsPath splits on both / and \
        raise InvalidModelError(
            f"{what}, which climbs out of the model's folder with '..'; keep external data in the model's folder"
        )
    try:
        data_file, real_folder = (folder / location).resolve(), folder.resolve()
    except (OSError, ValueError) as e:  # a symlink loop, a NUL in the name
        raise InvalidModelError(f"{what}, which cannot be resolved to a file ({e})") from None
    if not data_file.is_relative_to(real_folder):
        raise InvalidModelError(
            f"{what}, which resolves to {data_file}, outside the model's folder {real_folder} "
            "(through a symbolic link); keep external data in the model's folder"
        )
    if (folder / location).is_symlink():
        raise InvalidModelError(
            f"{what}, a symbolic link; onnx reads external data only from regular files, "
            "so put the file itself in the model's folder"
        )
    if not data_file.is_file():
        raise InvalidModelError(f"{what}, but {data_file} is not a file; copy the data file next to the model")
    entries = {e.key: e.value for e in tensor.external_data}
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries.get("length", 0))
    except ValueError:
        raise InvalidModelError(f"{what} at an offset or length that is not a number: {entries}") from None
    size = data_file.stat().st_size
    if offset < 0 or length < 0 or offset + length > size:
        raise InvalidModelError(
            f"{what} at offset {offset}, length {length}, but the file has {size} bytes; "
            "the data file is truncated or belongs to another model"
        )


def _load_external_data(proto: onnx.ModelProto, folder: pathlib.Path | None, source: str) -> None:
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(folder))
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as e:
        raise InvalidModelError(f"{source}: cannot read its external data ({e})") from None
