"""A simulated chip's op table (ops.toml next to its backend): which ONNX ops, opsets and dtypes
the real chip's op library runs, each row citing where it comes from."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..datafile import read_toml
from ..dtypes import DType, dtype as as_dtype
from ..errors import InvalidSpecError, UnsupportedDTypeError
from ..capability import NodeInfo, Support
from ..graph.host import formal_types, since_version
from .spec import ChipSpec, spec_error

__all__ = ["OpRow", "OpTable", "load_op_table"]


@dataclass(frozen=True)
class OpRow:
    op_type: str
    domain: str
    first_opset: int
    last_opset: int | None
    dtypes: frozenset[DType]
    dtypes_by_chip: dict[str, frozenset[DType]]
    chips: frozenset[str] | None
    source: str
    note: str = ""

    def dtypes_for(self, model: str) -> frozenset[DType]:
        for chip, dtypes in self.dtypes_by_chip.items():
            if chip.lower() == model.lower():
                return dtypes
        return self.dtypes


class OpTable:
    """Answers Support for nodes on one chip model."""

    def __init__(self, path: Path, family: str, rows: dict[tuple[str, str], OpRow], missing: dict[str, str], sources: list[str]):
        self.path = path
        self.family = family
        self.rows = rows
        self.missing = missing
        self.sources = sources
        self._answers: dict[tuple, Support] = {}

    def supports(self, node: NodeInfo, chip: ChipSpec) -> Support:
        # The answer depends on the op, its opset and dtypes and the chip model only; graphs repeat
        # those, so each is worked out once.
        signature = (chip.model, chip.name, *node.type_signature())
        found = self._answers.get(signature)
        if found is None:
            found = self._answers[signature] = self._supports(node, chip)
        return found

    def _supports(self, node: NodeInfo, chip: ChipSpec) -> Support:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        row = self.rows.get((domain, node.op_type))
        where = f"{self.path.parent.name}/{self.path.name}"
        if row is None:
            why = self.missing.get(node.op_type)
            source = f"{where}: [missing] {node.op_type}: {why}" if why else f"{where}: no row for {node.qualified_op}"
            return Support.no(f"{chip.name} has no {node.qualified_op}", source=source)
        source = f"{where}: [ops.{node.op_type}] {row.source}"
        if row.chips is not None and not any(c.lower() == chip.model.lower() for c in row.chips):
            return Support.no(f"{chip.name} has no {node.op_type}: only {', '.join(sorted(row.chips))} have it", source=source)
        version = since_version(node) or node.opset
        if version < row.first_opset or (row.last_opset is not None and version > row.last_opset):
            span = f"opset {row.first_opset}" + (f" through {row.last_opset}" if row.last_opset else " and later")
            newer = row.first_opset if version < row.first_opset and domain == "" else None
            return Support.no(f"{chip.name} runs {node.op_type} for {span}; this model's {node.op_type} is opset {version}",
                              needs_opset=newer, source=source)
        for dtype in node.dtypes:
            if dtype is DType.FLOAT64:
                return Support.no(f"float64 is not supported on {chip.name}; cast the model to float32", source=str(chip.path))
        allowed = row.dtypes_for(chip.model) & frozenset(chip.dtypes)
        bound = formal_types(node) or {}
        main = next(iter(bound), None)  # the op's primary type constraint ("T"), the one the table lists
        narrowed = False
        for dtype in bound.get(main, []) if main is not None else []:
            if dtype is None or dtype in allowed:
                continue
            if dtype is DType.INT64 and DType.INT32 in allowed:
                narrowed = True
                continue
            names = ", ".join(sorted(str(d) for d in allowed)) or "nothing"
            return Support.no(f"{chip.name} computes {node.op_type} in {names}, not {dtype}", source=source)
        note = f"int64 narrowed to int32 ({chip.name} has no int64 {node.op_type})" if narrowed else ""
        return Support.yes(note, source=source)

    def narrows_int64(self, support: Support) -> bool:
        return support.supported and support.note.startswith("int64 narrowed")


def _dtypes(path: Path, key: str, names: object) -> frozenset[DType]:
    if not isinstance(names, list):
        raise spec_error("op table", path, key, "must be a list of dtype names")
    try:
        return frozenset(as_dtype(n) for n in names)
    except UnsupportedDTypeError as exc:
        raise spec_error("op table", path, key, str(exc)) from None


@functools.lru_cache(maxsize=None)
def load_op_table(path: str | Path) -> OpTable:
    import onnx

    path = Path(path)
    data = read_toml(path, "op table", InvalidSpecError)
    if data.get("schema") != 1:
        raise spec_error("op table", path, "schema", f"must be 1, got {data.get('schema')!r}")
    rows: dict[tuple[str, str], OpRow] = {}
    for op_type, raw in data.get("ops", {}).items():
        key = f"ops.{op_type}"
        domain = raw.get("domain", "")
        if domain in ("", "ai.onnx") and not onnx.defs.has(op_type):
            raise spec_error("op table", path, key, f"onnx {onnx.__version__} has no operator {op_type!r} (op names are "
                                                    "case-sensitive, as onnx spells them: Relu, MatMul)")
        opsets = raw.get("opsets")
        if not isinstance(opsets, list) or not 1 <= len(opsets) <= 2 or not all(isinstance(v, int) and v >= 1 for v in opsets):
            raise spec_error("op table", path, f"{key}.opsets", "must be [first] or [first, last], opset numbers >= 1")
        if not str(raw.get("source", "")).strip():
            raise spec_error("op table", path, key, "must name its source")
        by_chip = {chip: _dtypes(path, f"{key}.dtypes_by_chip.{chip}", names) for chip, names in raw.get("dtypes_by_chip", {}).items()}
        chips = raw.get("chips")
        rows[(domain, op_type)] = OpRow(
            op_type=op_type,
            domain=domain,
            first_opset=opsets[0],
            last_opset=opsets[1] if len(opsets) == 2 else None,
            dtypes=_dtypes(path, f"{key}.dtypes", raw.get("dtypes")),
            dtypes_by_chip=by_chip,
            chips=frozenset(chips) if chips is not None else None,
            source=raw["source"],
            note=raw.get("note", ""),
        )
    return OpTable(path, data.get("chip_family", ""), rows, dict(data.get("missing", {})), list(data.get("sources", [])))
