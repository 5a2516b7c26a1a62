"""External data: tensors whose bytes live in files beside the model. hal reads them only from
regular files inside the model's folder, each long enough for the bytes it is said to hold.

Every external tensor is checked before any byte is read (location relative and inside the folder,
no symbolic link on the way, a regular file, offset and length whole numbers within the file and
matching the tensor's dims x dtype), and read from a file descriptor that hal opened itself and
checked again (see _DataFile): onnx's loader would reopen each file by name after the checks, so
a file swapped in between (a link to /etc/shadow, a shorter file) would be read unchecked.
"""
from __future__ import annotations

import io
import math
import os
import pathlib
import re
import stat
from dataclasses import dataclass

import onnx

from ..errors import InvalidModelError
from .tensor_data import _PACKED_BITS, _layout
from .walk import _all_tensors

__all__: list[str] = []

_EXTERNAL = onnx.TensorProto.EXTERNAL
_MAX_OFFSET = 2**63 - 1
"""Files offsets are signed 64-bit (off_t): anything larger cannot be a place in a file."""
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO put in the data file's place must not block open()
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows


@dataclass(frozen=True)
class _Slice:
    """Where one external tensor's bytes are: `location` (relative to the model's folder), from
    `offset`, `length` bytes."""

    location: str
    offset: int
    length: int


class _ExternalFiles:
    """The model's folder and the identity (device, inode, size, change times) of every data file
    as it was checked: the file read later must be that same file, unchanged."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        self.identities: dict[str, tuple[int, ...]] = {}


def _external_tensors(
    proto: onnx.ModelProto, path: pathlib.Path | None, source: str
) -> tuple[list[onnx.TensorProto], _ExternalFiles | None]:
    """The tensors `proto` keeps in external data, each checked (no byte read), and the files they
    are read from (None for a model that did not come from a file)."""
    external = [t for t in _all_tensors(proto) if t.data_location == _EXTERNAL]
    # Data files are looked up beside the path as given (a symlinked model finds its data next to
    # the link, as onnx.load does); containment is judged on fully resolved paths.
    files = None if path is None else _ExternalFiles(path.absolute().parent)
    if external:
        if files is None:
            raise InvalidModelError(
                f"{source} keeps tensor {external[0].name!r} in external data ({_location(external[0])!r}), "
                "which can only be found next to the model file: pass the path of the .onnx file instead"
            )
        for tensor in external:
            where = _check_external_location(tensor, files.folder, source)
            with _DataFile.open(files.folder, where.location, _what(tensor, source)) as data:
                data.check_range(where)
                files.identities.setdefault(where.location, data.identity)
    return external, files


def _location(tensor: onnx.TensorProto) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _what(tensor: onnx.TensorProto, source: str) -> str:
    return f"{source}: tensor {tensor.name!r} keeps its data in {_location(tensor)!r}"


def _check_external_location(tensor: onnx.TensorProto, folder: pathlib.Path, source: str) -> _Slice:
    """The slice a tensor's external data names, refused unless it is a range of a regular file
    inside the model's folder that holds exactly the tensor's bytes. Reads no byte."""
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in entries:
            raise InvalidModelError(
                f"{source}: tensor {tensor.name!r} gives its external data's {entry.key!r} twice; "
                "save the model again with onnx.save_model(..., save_as_external_data=True)"
            )
        entries[entry.key] = entry.value
    location = entries.get("location", "")
    what = _what(tensor, source)
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
    if "\0" in location:
        raise InvalidModelError(f"{what}, a name with a NUL character, which no file can have")
    try:
        data_file, real_folder = (folder / location).resolve(), folder.resolve()
    except (OSError, ValueError) as e:  # a symlink loop
        raise InvalidModelError(f"{what}, which cannot be resolved to a file ({e})") from None
    if not data_file.is_relative_to(real_folder):
        raise InvalidModelError(
            f"{what}, which resolves to {data_file}, outside the model's folder {real_folder} "
            "(through a symbolic link); keep external data in the model's folder"
        )
    offset = _whole_number(entries, "offset", what)
    length = _whole_number(entries, "length", what)
    expected = _tensor_nbytes(tensor, what)
    if length is None:  # onnx would read to the end of the file; the tensor's own size is what it means
        length = expected
    elif expected is not None and length != expected:
        raise InvalidModelError(
            f"{what} with length {length} bytes, but its dims {list(tensor.dims)} of "
            f"{onnx.TensorProto.DataType.Name(tensor.data_type)} take {expected} bytes; "
            "the model and its data file do not belong together: export the model again"
        )
    if length is None:
        raise InvalidModelError(f"{what} without a length, and its type has no fixed size; give its length")
    offset = offset or 0
    if offset + length > _MAX_OFFSET:
        raise InvalidModelError(f"{what} at offset {offset}, length {length}, which ends past any file's end (2^63 bytes)")
    return _Slice(location, offset, length)


_DECIMAL = re.compile(r"[0-9]+")


def _whole_number(entries: dict[str, str], key: str, what: str) -> int | None:
    """An offset or length as onnx writes it: decimal digits only (not '-1', '1e9', ' 8', '0x10')."""
    text = entries.get(key)
    if text is None:
        return None
    if not _DECIMAL.fullmatch(text):
        raise InvalidModelError(
            f"{what} at an {key} that is not a whole number of bytes: {text!r}; "
            "the model file is corrupt: export it again"
        )
    value = int(text)
    if value > _MAX_OFFSET:
        raise InvalidModelError(f"{what} at an {key} of {value} bytes, beyond any file's size (2^63 bytes)")
    return value


def _tensor_nbytes(tensor: onnx.TensorProto, what: str) -> int | None:
    """Bytes the tensor's dims and data type take in raw form (None for strings, which have no
    fixed size and cannot be external in onnx)."""
    if any(d < 0 for d in tensor.dims):
        raise InvalidModelError(f"{what} with negative dims {list(tensor.dims)}; the model file is corrupt")
    elements = math.prod(tensor.dims)
    bits = _PACKED_BITS.get(tensor.data_type)
    if bits is not None:
        return (elements * bits + 7) // 8
    if tensor.data_type == onnx.TensorProto.STRING:
        return None
    layout = _layout(tensor.data_type)
    if layout is None:
        raise InvalidModelError(f"{what} of unknown data type {tensor.data_type}; the model file is corrupt")
    return elements * layout[1]


class _DataFile:
    """An external data file opened once, by hal, without following any symbolic link on the way,
    and checked on its descriptor (fstat): a regular file, the same one that was checked, with the
    bytes asked for. Reads go through that descriptor, never through the name again."""

    def __init__(self, fd: int, what: str) -> None:
        self.fd = fd
        self.what = what
        info = os.fstat(fd)
        # an inode number can be reused by a file made after the checked one was deleted: its
        # change time then tells them apart (and any write or truncation since the check)
        self.identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        self.size = info.st_size
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise InvalidModelError(f"{what}, which is not a regular file ({_file_kind(info.st_mode)}); "
                                    "copy the data file itself next to the model")

    @classmethod
    def open(cls, folder: pathlib.Path, location: str, what: str) -> _DataFile:
        return cls(_open_inside(folder, location, what), what)

    def __enter__(self) -> _DataFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def check_range(self, where: _Slice) -> None:
        if where.offset + where.length > self.size:
            raise InvalidModelError(
                f"{self.what} at offset {where.offset}, length {where.length}, but the file has {self.size} bytes; "
                "the data file is truncated or belongs to another model"
            )

    def read(self, where: _Slice) -> bytes:
        self.check_range(where)
        raw = io.FileIO(self.fd, closefd=False)
        try:
            raw.seek(where.offset)
            # BufferedReader.read(n) reads into one bytes object of n, looping past the 2 GiB a
            # single read() returns on Linux: a tensor over 2 GiB is read once, never joined from parts.
            data = io.BufferedReader(raw).read(where.length)
        except OSError as e:
            raise InvalidModelError(f"{self.what}, which cannot be read ({e.strerror or e})") from None
        if len(data) != where.length:  # the file shrank after fstat
            raise InvalidModelError(
                f"{self.what}, which ended at byte {where.offset + len(data)} while hal read up to "
                f"{where.offset + where.length}: it changed while the model loaded; load it again once nothing writes to it"
            )
        return data


def _open_inside(folder: pathlib.Path, location: str, what: str) -> int:
    """A read-only descriptor of folder/location, opened component by component relative to the
    folder's descriptor with O_NOFOLLOW, so that no symbolic link (file or directory on the way)
    is followed, however the names change meanwhile. Non-regular files are refused before open()
    (opening a device can have effects), and a FIFO put there between the two does not block."""
    parts = [p for p in pathlib.PurePosixPath(location).parts if p != "."]
    file_flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY
    if os.open not in os.supports_dir_fd:  # Windows: one open by name, the checks then on its handle
        target = os.path.join(folder, *parts)
        _refuse_special(os.lstat(target) if os.path.lexists(target) else None, target, what)
        return _open(target, file_flags, what)
    fd = _open(str(folder), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC, what)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                found = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                found = None
            except OSError as e:
                raise InvalidModelError(f"{what}, which cannot be opened ({e.strerror or e})") from None
            if found is not None and stat.S_ISLNK(found.st_mode):
                raise InvalidModelError(
                    f"{what}, whose {'file' if last else f'folder {part!r}'} is a symbolic link; hal reads "
                    "external data only from regular files inside the model's folder, so put the file itself there"
                )
            if last:
                _refuse_special(found, os.path.join(folder, *parts), what)
            elif found is None or not stat.S_ISDIR(found.st_mode):
                raise InvalidModelError(f"{what}, but {os.path.join(folder, *parts[:i + 1])} is not a folder")
            flags = file_flags if last else os.O_RDONLY | _O_NOFOLLOW | _O_DIRECTORY | _O_CLOEXEC
            inner = _open(part, flags, what, dir_fd=fd)
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise


def _refuse_special(found: os.stat_result | None, target: str, what: str) -> None:
    if found is None:
        raise InvalidModelError(f"{what}, but {target} is not a file; copy the data file next to the model")
    if not stat.S_ISREG(found.st_mode):
        raise InvalidModelError(f"{what}, which is not a regular file ({_file_kind(found.st_mode)}); "
                                "copy the data file itself next to the model")


def _open(name: str, flags: int, what: str, dir_fd: int | None = None) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as e:  # ELOOP: a link put in its place; ENXIO: a socket
        raise InvalidModelError(
            f"{what}, which cannot be opened as a regular file inside the model's folder ({e.strerror or e}); "
            "it may have been replaced while the model loaded"
        ) from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _load_external_data(proto: onnx.ModelProto, files: _ExternalFiles | None, source: str) -> None:
    """Reads every external tensor of `proto` into its raw_data, each file through one descriptor
    checked to be the file `_external_tensors` checked."""
    external = [t for t in _all_tensors(proto) if t.data_location == _EXTERNAL]
    if not external:
        return
    if files is None:  # _external_tensors refused such a model already
        raise InvalidModelError(f"{source} keeps external data but was not loaded from a file")
    opened: dict[str, _DataFile] = {}
    try:
        slices = [(tensor, _check_external_location(tensor, files.folder, source)) for tensor in external]
        for tensor, where in slices:
            data = opened.get(where.location)
            if data is None:
                data = _DataFile.open(files.folder, where.location, _what(tensor, source))
                opened[where.location] = data
                if files.identities.get(where.location) != data.identity:
                    raise InvalidModelError(
                        f"{_what(tensor, source)}, which changed after hal checked it (another file in its "
                        "place, or written to since); load the model again once nothing changes its folder"
                    )
            data.check_range(where)
        for tensor, where in slices:
            tensor.raw_data = opened[where.location].read(where)
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    finally:
        for data in opened.values():
            os.close(data.fd)
