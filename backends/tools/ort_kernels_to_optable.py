#!/usr/bin/env python3
"""Transcribe onnxruntime's kernel registry into a hal op table (hal/sim/optables/*.toml).

Two kinds of input, both files from onnxruntime's source tree:

* ``md``: docs/OperatorKernels.md, which onnxruntime generates from its registered kernels
  (tools/python/gen_opkernel_doc.py), and the name of one execution provider's section in it
  ("CUDAExecutionProvider"). This is how hal/sim/optables/onnxruntime_cuda.toml is made.
* ``rocm``: onnxruntime/core/providers/rocm/rocm_execution_provider.cc, whose RegisterRocmKernels()
  table lists the ROCm EP's kernels. OperatorKernels.md has no ROCMExecutionProvider section in
  any version this project could read, so hal/sim/optables/onnxruntime_rocm.toml comes from that
  table. An untyped registration (ONNX_OPERATOR_KERNEL_CLASS_NAME(..., 13, Concat)) carries no
  types; those come from the CUDAExecutionProvider section of one or more OperatorKernels.md files
  (--types-md, first file that has the op wins), since the ROCm EP builds those kernels from the
  hipified CUDA sources, except for the few kernels ROCm defines itself (ROCM_OWN_TYPES below).

This machine has no network access: fetch the files yourself from the commits the tables cite, e.g.

  curl -LO https://raw.githubusercontent.com/microsoft/onnxruntime/8f063305aacd23aadf77cda4c52e0592a02a7161/docs/OperatorKernels.md
  python3 backends/tools/ort_kernels_to_optable.py md OperatorKernels.md CUDAExecutionProvider \\
      --cite microsoft/onnxruntime@8f063305aacd23aadf77cda4c52e0592a02a7161 > hal/sim/optables/onnxruntime_cuda.toml

  curl -L -o rocm_execution_provider.cc https://raw.githubusercontent.com/microsoft/onnxruntime/41e2f69b64e81576b31cfeb2ab33c429a25bb220/onnxruntime/core/providers/rocm/rocm_execution_provider.cc
  curl -L -o OperatorKernels_rocmfork.md https://raw.githubusercontent.com/ROCm/onnxruntime/1c3bacdab238107557ce689c156fb9968dcce4d5/docs/OperatorKernels.md
  python3 backends/tools/ort_kernels_to_optable.py rocm rocm_execution_provider.cc \\
      --cite microsoft/onnxruntime@41e2f69b64e81576b31cfeb2ab33c429a25bb220 \\
      --types-md OperatorKernels.md=microsoft/onnxruntime@8f063305aacd23aadf77cda4c52e0592a02a7161 \\
      --types-md OperatorKernels_rocmfork.md=ROCm/onnxruntime@1c3bacdab238107557ce689c156fb9968dcce4d5 \\
      > hal/sim/optables/onnxruntime_rocm.toml

The rules (also written into each table's header): only the default ONNX domain is taken; rows
for names onnx has no schema for are skipped and listed. An op's version ranges are combined:
opsets = [first] when the newest range is open-ended, else [first, last]; a gap is noted. dtypes =
the union over the ranges of the types of the constraint bound to the op's first input in the ONNX
schema of that version (the constraint hal.sim.optable checks), as hal dtype names; types hal has
no dtype for (string, float8*, int4) are dropped but stay in the row's source text. The output
depends on the installed onnx (its schemas decide the first input's constraint and the [missing]
list), which the header names.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import onnx

HAL_ORDER = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]
ONNX_TO_HAL = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
               "int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
               "uint32": "uint32", "int64": "int64", "uint64": "uint64", "bool": "bool",
               "complex64": "complex64", "complex128": "complex128"}
CPP_TO_HAL = {"float": "float32", "double": "float64", "double_t": "float64", "MLFloat16": "float16",
              "BFloat16": "bfloat16", "int8_t": "int8", "uint8_t": "uint8", "int16_t": "int16",
              "uint16_t": "uint16", "int32_t": "int32", "uint32_t": "uint32", "int64_t": "int64",
              "uint64_t": "uint64", "bool": "bool"}
OPEN = None  # an open-ended version range ("13+")

# Where's first input is the bool condition, which is what hal checks; its X/Y types are listed too.
ALSO_LIST = {"Where": "T"}
# Typed ROCm registrations whose type parameter is not the first input's constraint: Slice and
# GatherND are typed by their index type (Tind), QuantizeLinear by its output type (T2, and
# TWO_TYPED <T2, T1>). Their data types come from the untyped path.
TYPE_PARAM_NOT_PRIMARY = {"Slice", "GatherND", "QuantizeLinear"}
# Untyped ROCm kernels that ROCm defines itself rather than building from the hipified CUDA
# source; their type constraints as read from those files: op -> [(first, last, dtypes, source)].
ROCM_OWN_TYPES = {
    "Sum": [(6, OPEN, ["float16", "float32", "float64"],
             "rocm/math/variadic_elementwise_ops.cc @087afa0: Sum 6-7, 8-12, 13 T = k_hfd_datatypes {MLFloat16, float, double}")],
    "Min": [(6, 11, ["float16", "float32", "float64"],
             "rocm/math/variadic_elementwise_ops.cc @087afa0: Min 6-11 T = k_hfd_datatypes {MLFloat16, float, double}"),
            (12, OPEN, ["uint32", "uint64", "int32", "int64", "float16", "float32", "float64"],
             "Min 12-12, 13 T = k_uzilhfd_datatypes {uint32_t, uint64_t, int32_t, int64_t, MLFloat16, float, double}")],
    "Max": [(6, 11, ["float16", "float32", "float64"],
             "rocm/math/variadic_elementwise_ops.cc @087afa0: Max 6-11 T = k_hfd_datatypes {MLFloat16, float, double}"),
            (12, OPEN, ["uint32", "uint64", "int32", "int64", "float16", "float32", "float64"],
             "Max 12-12, 13 T = k_uzilhfd_datatypes {uint32_t, uint64_t, int32_t, int64_t, MLFloat16, float, double}")],
    "Einsum": [(12, OPEN, ["float32", "float16"], "rocm/math/einsum.cc @11bfe46: Einsum 12 T = {float, MLFloat16}")],
    "Dropout": [(12, OPEN, ["float32", "float64", "float16"],
                 "rocm/nn/dropout.cc @19f7736: Dropout 12-12, 13 T = AllIEEEFloatTensorTypes {float, double, MLFloat16}")],
}


# ---------------------------------------------------------------------------------------------
# ONNX schemas

_HISTORY: dict[str, list[int]] = defaultdict(list)
for _s in onnx.defs.get_all_schemas_with_history():
    if _s.domain == "":
        _HISTORY[_s.name].append(_s.since_version)


def onnx_has(op: str) -> bool:
    return onnx.defs.has(op)


def earliest_version(op: str) -> int:
    return min(_HISTORY[op])


def first_input_constraint(op: str, version: int) -> str:
    """The type string ("T", "tensor(int64)") bound to the op's first input (or, with no inputs, its
    first output) in the ONNX schema in force at `version`."""
    schema = onnx.defs.get_schema(op, version, "")
    formal = schema.inputs[0] if schema.inputs else schema.outputs[0]
    return formal.type_str


# ---------------------------------------------------------------------------------------------
# Type names

def split_top(text: str) -> list[str]:
    """Split 'tensor(a), seq(tensor(b)), map(int64,tensor(c))' at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def onnx_type_to_hal(t: str) -> str | None:
    m = re.fullmatch(r"tensor\((\w+)\)", t) or re.fullmatch(r"seq\(tensor\((\w+)\)\)", t)
    return ONNX_TO_HAL.get(m.group(1)) if m else None


def short_onnx_type(t: str) -> str:
    m = re.fullmatch(r"tensor\((\w+)\)", t)
    if m:
        return m.group(1)
    m = re.fullmatch(r"seq\(tensor\((\w+)\)\)", t)
    return f"seq({m.group(1)})" if m else t


def cpp_type_to_hal(token: str) -> str:
    if token in CPP_TO_HAL:
        return CPP_TO_HAL[token]
    # OneHot's compound name, <indices>_<values>_<depth>: the first part is the indices type (T1),
    # OneHot's first input.
    for name in sorted(CPP_TO_HAL, key=len, reverse=True):
        if token.startswith(name + "_"):
            return CPP_TO_HAL[name]
    raise ValueError(f"unknown C++ type {token!r}")


def ordered(dtypes) -> list[str]:
    return sorted(set(dtypes), key=HAL_ORDER.index)


# ---------------------------------------------------------------------------------------------
# Version ranges

def fmt_range(first: int, last: int | None) -> str:
    if last is OPEN:
        return f"{first}+"
    return str(first) if first == last else f"[{first}, {last}]"


def fmt_span(first: int, last: int | None) -> str:
    if last is OPEN:
        return f"{first}+"
    return str(first) if first == last else f"{first}-{last}"


def merge_spans(spans: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    out: list[list] = []
    for first, last in sorted(spans, key=lambda s: s[0]):
        if out and out[-1][1] is not OPEN and first <= out[-1][1] + 1:
            out[-1][1] = OPEN if last is OPEN else max(out[-1][1], last)
        elif out and out[-1][1] is OPEN:
            continue
        else:
            out.append([first, last])
    return [tuple(s) for s in out]


@dataclass
class Range:
    first: int
    last: int | None
    dtypes: set[str]
    text: str  # how the source writes this range and its types


@dataclass
class Op:
    name: str
    ranges: list[Range] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""


def combine(op: Op) -> dict:
    """opsets, dtypes and the notes that the combination needs."""
    ranges = sorted(op.ranges, key=lambda r: r.first)
    spans = merge_spans([(r.first, r.last) for r in ranges])
    first = spans[0][0]
    last = spans[-1][1]
    notes = list(op.notes)
    if len(spans) > 1:
        covered = ", ".join(fmt_span(*s) for s in spans)
        notes.append(f"kernels cover opsets {covered} only (gap between)")
    union = set().union(*(r.dtypes for r in ranges))
    partial = []
    for d in ordered(union):
        having = [(r.first, r.last) for r in ranges if d in r.dtypes]
        if len(having) < len(ranges):
            partial.append(f"{d} {', '.join(fmt_span(*s) for s in merge_spans(having))}")
    if partial:
        notes.append("not in every version's kernel: " + "; ".join(partial))
    return {"opsets": [first] if last is OPEN else [first, last], "dtypes": ordered(union), "notes": notes}


# ---------------------------------------------------------------------------------------------
# docs/OperatorKernels.md

@dataclass
class MdRow:
    first: int
    last: int | None
    constraints: dict[str, list[str]]  # name -> ONNX type strings, as written


def parse_version(text: str) -> tuple[int, int | None]:
    text = text.strip()
    if text.endswith("+"):
        return int(text[:-1]), OPEN
    m = re.fullmatch(r"\[(\d+),\s*(\d+)\]", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    return int(text), int(text)


def parse_md(path: str, ep: str) -> tuple[dict[str, list[MdRow]], dict[str, list[str]]]:
    """{op: [rows]} of the default domain of one EP's section, and {domain: [ops]} of the others."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(f"## Operators implemented by {ep}")
    except ValueError:
        raise SystemExit(f"{path}: no section '## Operators implemented by {ep}'") from None
    ops: dict[str, list[MdRow]] = defaultdict(list)
    others: dict[str, list[str]] = defaultdict(list)
    domain, name = None, None
    for line in lines[start + 1:]:
        if line.startswith(("## ", "<a name=")):
            break
        m = re.match(r"\|\*\*Operator Domain:\*\* \*([\w.]+)\*", line)
        if m:
            domain = m.group(1)
            continue
        cells = line.split("|")
        if len(cells) < 6 or cells[1].strip() in ("Op Name",) or cells[1].startswith("---"):
            continue
        if cells[1]:
            name = cells[1]
        if domain != "ai.onnx":
            if cells[1] and name not in others[domain]:
                others[domain].append(name)
            continue
        first, last = parse_version(cells[3])
        constraints = {}
        for part in cells[4].split("<br/>"):
            mm = re.match(r"\s*\*\*(\w+)\*\*\s*=\s*(.*)$", part)
            if mm:
                constraints[mm.group(1)] = split_top(mm.group(2))
        ops[name].append(MdRow(first, last, constraints))
    return dict(ops), dict(others)


def md_row_primary(op: str, row: MdRow) -> tuple[set[str], str] | None:
    """(hal dtypes, source text) of the constraint bound to the op's first input in this range;
    None when ONNX has no version of the op inside the range."""
    start = max(row.first, earliest_version(op))
    if row.last is not OPEN and start > row.last:
        return None
    cname = first_input_constraint(op, start)
    names = [cname] + ([ALSO_LIST[op]] if op in ALSO_LIST else [])
    dtypes, texts = set(), []
    for n in names:
        if n in row.constraints:
            types = row.constraints[n]
        elif n.startswith(("tensor(", "seq(")):
            types = [n]
        else:
            raise SystemExit(f"{op} {fmt_range(row.first, row.last)}: the first input's constraint {n!r} is "
                             f"not among {sorted(row.constraints)}")
        dtypes |= {d for d in map(onnx_type_to_hal, types) if d}
        label = "" if n == "T" and len(names) == 1 else f"{n} "
        texts.append(f"{label}{{{', '.join(short_onnx_type(t) for t in types)}}}")
    return dtypes, f"{fmt_range(row.first, row.last)} {', '.join(texts)}"


# ---------------------------------------------------------------------------------------------
# rocm_execution_provider.cc

REG = re.compile(r"BuildKernelCreateInfo<\s*ONNX_OPERATOR_(VERSIONED_)?(TWO_)?(TYPED_)?KERNEL_CLASS_NAME\(\s*"
                 r"kRocmExecutionProvider\s*,\s*(\w+)\s*,([^)]*)\)\s*>")


@dataclass
class Reg:
    op: str
    first: int
    last: int | None
    types: list[str]  # C++ type tokens, [] when untyped


def parse_registrations(path: str) -> tuple[list[Reg], list[Reg], list[str]]:
    """(registered kOnnxDomain kernels, commented-out ones, other domains seen)."""
    text = Path(path).read_text(encoding="utf-8")
    m = re.search(r"function_table\[\]\s*=\s*\{(.*?)\n\s*\};", text, re.DOTALL)
    if not m:
        raise SystemExit(f"{path}: no function_table[] = {{...}}; block")
    live, commented, others = [], [], []

    def entries(chunk: str):
        for mm in REG.finditer(chunk):
            versioned, two, typed, domain, args = mm.groups()
            a = [x.strip() for x in args.split(",")]
            first = int(a[0])
            last = int(a[1]) if versioned else OPEN
            rest = a[2:] if versioned else a[1:]
            ntypes = 2 if two else (1 if typed else 0)
            yield domain, Reg(rest[-1], first, last, rest[:ntypes])

    body = m.group(1)
    kept = []
    for line in body.splitlines():
        if line.strip().startswith("//"):
            for domain, reg in entries(line):
                if domain == "kOnnxDomain":
                    commented.append(reg)
        else:
            kept.append(re.sub(r"//.*", "", line))
    for domain, reg in entries("\n".join(kept)):
        if domain == "kOnnxDomain":
            live.append(reg)
        elif domain not in others:
            others.append(domain)
    return live, commented, others


def overlaps(a_first, a_last, b_first, b_last) -> bool:
    a_last = 10**9 if a_last is OPEN else a_last
    b_last = 10**9 if b_last is OPEN else b_last
    return a_first <= b_last and b_first <= a_last


# ---------------------------------------------------------------------------------------------
# Output

def q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def emit(header: list[str], family: str, sources: list[str], ops: dict[str, Op], missing: dict[str, str]) -> str:
    out = [f"# {h}" if h else "#" for h in header]
    out += ["schema = 1", f"chip_family = {q(family)}", "sources = ["]
    out += [f"  {q(s)}," for s in sources]
    out += ["]", ""]
    for name in sorted(ops):
        c = combine(ops[name])
        out.append(f"[ops.{name}]")
        out.append(f"opsets = {json.dumps(c['opsets'])}")
        out.append(f"dtypes = [{', '.join(q(d) for d in c['dtypes'])}]")
        out.append(f"source = {q(ops[name].source)}")
        if c["notes"]:
            out.append(f"note = {q('; '.join(c['notes']))}")
        out.append("")
    out.append("[missing]")
    for name in sorted(missing):
        out.append(f"{name} = {q(missing[name])}")
    return "\n".join(out) + "\n"


def missing_table(present: set[str], newest: int, why_first: dict[str, str], absent: str) -> dict[str, str]:
    why_first = {"Constant": "no EP has a Constant kernel: onnxruntime turns Constant nodes into initializers when it "
                             "loads a model", **why_first}
    missing = {}
    for name in sorted(_HISTORY):
        schema = onnx.defs.get_schema(name, domain="")
        if name in present or schema.deprecated:
            continue
        if name in why_first:
            missing[name] = why_first[name]
            continue
        why = absent
        if earliest_version(name) > newest:
            why += f"; ONNX added {name} in opset {earliest_version(name)}, after the newest opset this list covers ({newest})"
        if schema.has_function or schema.has_context_dependent_function:
            why += "; ONNX defines it as a function, which onnxruntime expands into other ops when no kernel exists"
        missing[name] = why
    return missing


def wrap(text: str, width: int = 118) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return lines


def split_cite(cite: str) -> tuple[str, str]:
    repo, _, commit = cite.partition("@")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise SystemExit(f"--cite {cite!r}: give OWNER/REPO@<40-hex commit>")
    return repo, commit


COMMON_RULES = (
    "Combining an op's rows (one per kernel version range): opsets = [first] when the newest range is open-ended "
    "(\"13+\"), else [first, last]; a gap between ranges is named in the note. A range that starts before ONNX's first "
    "version of the op counts from that first version. dtypes = the union over the ranges of the types of the "
    "constraint bound to the op's first input in the ONNX schema of that range's first version (the constraint "
    "hal.sim.optable checks), as hal dtype names: tensor(float) = float32, tensor(double) = float64, MLFloat16 = "
    "float16, seq(tensor(X)) = X. Types hal has no dtype for (string, float8*, int4/uint4) are dropped; the source "
    "text keeps them. A dtype missing from some ranges is named in the note with the ranges that have it. Where: hal "
    "checks its first input (the bool condition), so bool is listed, and the X/Y types (T) are listed too. float64 "
    "rows stay (the EP has them; hal's simulated chips refuse float64 nodes on their own)."
)


def run_md(args) -> str:
    repo, commit = split_cite(args.cite)
    rows, others = parse_md(args.path, args.ep)
    ops: dict[str, Op] = {}
    skipped = []
    newest = 0
    for name, md_rows in rows.items():
        if not onnx_has(name):
            skipped.append(name)
            continue
        op = Op(name)
        texts = []
        for r in md_rows:
            got = md_row_primary(name, r)
            newest = max(newest, r.first)
            if got is None:
                continue
            dtypes, text = got
            first = max(r.first, earliest_version(name))
            op.ranges.append(Range(first, r.last, dtypes, text))
            texts.append(text)
        op.source = f"onnxruntime docs/OperatorKernels.md {args.ep}: {name} " + "; ".join(texts)
        ops[name] = op
    short = f"{repo} docs/OperatorKernels.md @{commit[:7]}"
    why_first = {}
    if args.ep == "CUDAExecutionProvider":
        why_first["NonMaxSuppression"] = (
            "cuda_execution_provider.cc registers NonMaxSuppression (10-10 and 11), but a kernel with no type "
            f"constraint gets no row in OperatorKernels.md, so this transcription of {short} does not claim it")
    missing = missing_table(set(ops), newest, why_first, f"no {args.ep} kernel in {short}")
    header = wrap(
        f"ONNX operators onnxruntime's {args.ep} registers: the op set that "
        + (args.who or "its users") + f" run when they run onnxruntime's {args.ep}. "
        f"Transcribed from onnxruntime's own kernel registry documentation, docs/OperatorKernels.md (generated from "
        f"the registered kernels by tools/python/gen_opkernel_doc.py), section \"Operators implemented by {args.ep}\", "
        f"at {repo} commit {commit}, by backends/tools/ort_kernels_to_optable.py (onnx {onnx.__version__} schemas). "
        f"This is upstream's list; a vendor's port of the EP may add or drop kernels.")
    header += [""] + wrap(
        "Taken: the default domain (\"Operators in the Default Domain\", ai.onnx). Left out: the section's "
        + ", ".join(sorted(others)) + " ops (contrib ops: hal's graph layer handles the default domain and its own com.hal kernels only, and "
        "hal.sim.optable keys rows by domain, so such rows would never be consulted); and the ai.onnx rows that onnx "
        f"{onnx.__version__} has no schema for: {', '.join(sorted(skipped))} (experimental ops ONNX removed, "
        "onnxruntime-internal ops). Kernels with no type constraint get no row in OperatorKernels.md "
        "(gen_opkernel_doc.py writes one line per constraint): NonMaxSuppression, which the EP does register, is "
        "absent for that reason and listed under [missing].")
    header += [""] + wrap(COMMON_RULES)
    header += [""] + wrap(
        f"[missing]: every non-deprecated ai.onnx operator of onnx {onnx.__version__} without a row, and why. "
        f"The list's newest opset is {newest}.")
    return emit(header, args.family, [f"https://github.com/{repo}/blob/{commit}/docs/OperatorKernels.md"],
                ops, missing)


def run_rocm(args) -> str:
    repo, commit = split_cite(args.cite)
    live, commented, other_domains = parse_registrations(args.path)
    md_sources = []
    for spec in args.types_md:
        path, _, cite = spec.partition("=")
        md_repo, md_commit = split_cite(cite)
        rows, _ = parse_md(path, "CUDAExecutionProvider")
        md_sources.append((rows, md_repo, md_commit))
    by_op: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for reg in live:
        by_op[reg.op][(reg.first, reg.last)].extend(reg.types)
    off: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for reg in commented:
        off[reg.op][(reg.first, reg.last)].extend(reg.types)

    ops: dict[str, Op] = {}
    skipped = []
    newest = 0
    for name, ranges in by_op.items():
        if not onnx_has(name):
            skipped.append(name)
            continue
        op = Op(name)
        reg_texts, type_texts = [], []
        md_used = None
        for (first, last), types in sorted(ranges.items(), key=lambda kv: kv[0][0]):
            newest = max(newest, first)
            start = max(first, earliest_version(name))
            if last is not OPEN and start > last:
                continue
            cname = first_input_constraint(name, start)
            typed = bool(types) and name not in TYPE_PARAM_NOT_PRIMARY
            regs = [r for r in live if r.op == name and (r.first, r.last) == (first, last)]
            if types:
                # TWO_TYPED registrations are shown T1/T2.
                shown = ", ".join("/".join(r.types) for r in regs)
                reg_texts.append(f"{fmt_span(first, last)} {{{shown}}}")
            else:
                reg_texts.append(f"{fmt_span(first, last)} (untyped)")
            if typed:
                # The first type of a TWO_TYPED <T1, T2> registration is the input's.
                dtypes = {cpp_type_to_hal(r.types[0]) for r in regs}
                if name in ALSO_LIST:
                    dtypes.add("bool")
                op.ranges.append(Range(start, last, dtypes, ""))
                continue
            if cname.startswith("tensor("):
                dtypes = {onnx_type_to_hal(cname)}
                op.ranges.append(Range(start, last, dtypes, ""))
                type_texts.append(f"{fmt_span(first, last)}: first input fixed by ONNX as {cname}")
                continue
            own = [o for o in ROCM_OWN_TYPES.get(name, []) if overlaps(first, last, o[0], o[1])]
            if own:
                dtypes = set()
                for _f, _l, ds, src in own:
                    dtypes |= set(ds)
                    if src not in type_texts:
                        type_texts.append(src)
                op.ranges.append(Range(start, last, dtypes, ""))
                continue
            for rows, md_repo, md_commit in md_sources:
                hits = [r for r in rows.get(name, []) if overlaps(first, last, r.first, r.last)]
                if hits:
                    dtypes = set()
                    for r in hits:
                        got = md_row_primary(name, r)
                        if got is None:
                            continue
                        dtypes |= got[0]
                        label = f"docs/OperatorKernels.md CUDAExecutionProvider @{md_commit[:7]}"
                        md_used = label
                        if got[1] not in type_texts:
                            type_texts.append(got[1])
                    op.ranges.append(Range(start, last, dtypes, ""))
                    break
            else:
                raise SystemExit(f"{name} {fmt_span(first, last)}: untyped and no --types-md has it")
        source = f"rocm_execution_provider.cc @{commit[:7]}: {name} " + "; ".join(reg_texts)
        if type_texts:
            via = f" | types: {md_used}: " if md_used else " | types: "
            source += via + "; ".join(type_texts)
        op.source = source
        if name in off:
            op.notes.append("commented out in the registration table: " + "; ".join(
                f"{fmt_span(*k)} {', '.join(v) if v else '(untyped)'}" for k, v in sorted(off[name].items(), key=lambda kv: kv[0][0])))
        ops[name] = op

    short = f"{repo} rocm_execution_provider.cc @{commit[:7]}"
    why_first = {}
    for name, ranges in off.items():
        if name not in ops and onnx_has(name):
            why_first[name] = (f"only commented-out registrations in {short} ("
                               + "; ".join(f"{fmt_span(*k)} {', '.join(v)}" for k, v in sorted(ranges.items(), key=lambda kv: kv[0][0]))
                               + "), and ROCMExecutionProvider::GetCapability refuses LSTM, RNN and GRU nodes")
    missing = missing_table(set(ops), newest, why_first, f"no ROCm kernel registered in {short}")
    md_cites = ", ".join(f"{r}@{c}" for _, r, c in md_sources)
    header = wrap(
        "ONNX operators onnxruntime's ROCm execution provider registers: the op set that "
        + (args.who or "its users") + " run when they run onnxruntime's ROCMExecutionProvider. "
        "onnxruntime's docs/OperatorKernels.md has no ROCMExecutionProvider section (the copies read, "
        f"{md_cites}, document the CPU, CUDA and DML EPs only), so the op set is transcribed from the ROCm EP's own "
        "kernel registration table, the function_table of RegisterRocmKernels() in "
        f"onnxruntime/core/providers/rocm/rocm_execution_provider.cc at {repo} commit {commit}, by "
        f"backends/tools/ort_kernels_to_optable.py (onnx {onnx.__version__} schemas). Entries commented out there are "
        "not registered and are left out; a row's note names its commented-out kernels (the double kernels of Conv, "
        "ConvTranspose, BatchNormalization, Softmax, LogSoftmax, ArgMax/ArgMin and the Reduce ops, and every "
        "RNN/GRU/LSTM kernel).")
    header += [""] + wrap(
        "dtypes: a typed registration (..._TYPED_KERNEL_CLASS_NAME(..., 7, 12, float, Add)) names its type, and "
        "TWO_TYPED ones name <T1, T2>, of which T1 (the first input's) is taken. Slice and GatherND are typed by "
        "their index type and QuantizeLinear by its output type, so they, like the untyped registrations "
        "(..._KERNEL_CLASS_NAME(..., 13, Concat)), take their types elsewhere: the kernels ROCm defines itself from "
        "their own files (Sum, Min, Max: rocm/math/variadic_elementwise_ops.cc @087afa0; Einsum: rocm/math/einsum.cc "
        "@11bfe46; Dropout 12 and 13: rocm/nn/dropout.cc @19f7736, AllIEEEFloatTensorTypes = float, double, float16, "
        "all under microsoft/onnxruntime); the rest, which ROCm builds from the hipified CUDA sources, from the "
        "CUDAExecutionProvider section of docs/OperatorKernels.md (the first of " + md_cites + " that lists the op; "
        "IsNaN and IsInf are only in the second), over the version ranges that overlap the registration; "
        "NonMaxSuppression's first input is fixed by ONNX (tensor(float)). Those files are other commits than the "
        "registration table, so an untyped kernel's types may differ slightly from that build's.")
    header += [""] + wrap(
        "Taken: the default domain (kOnnxDomain). Left out: the contrib kernels (RegisterRocmContribKernels, "
        "com.microsoft, not read: hal's graph layer handles the default domain and its own com.hal kernels only, and "
        "hal.sim.optable keys rows by domain); " + (", ".join(other_domains) + " entries; " if other_domains else "")
        + f"and registrations onnx {onnx.__version__} has no schema for: {', '.join(sorted(skipped))}.")
    header += [""] + wrap(COMMON_RULES)
    header += [""] + wrap(
        f"[missing]: every non-deprecated ai.onnx operator of onnx {onnx.__version__} without a row, and why. "
        f"The table's newest opset is {newest}.")
    sources = [f"https://github.com/{repo}/blob/{commit}/onnxruntime/core/providers/rocm/rocm_execution_provider.cc"]
    sources += [f"https://github.com/{r}/blob/{c}/docs/OperatorKernels.md" for _, r, c in md_sources]
    sources += [
        "https://github.com/microsoft/onnxruntime/blob/087afa0f4fa5dd468afd7c28733259e231736d27/onnxruntime/core/providers/rocm/math/variadic_elementwise_ops.cc",
        "https://github.com/microsoft/onnxruntime/blob/11bfe468f149ebb8699f9f654fbe7b3f50a96896/onnxruntime/core/providers/rocm/math/einsum.cc",
        "https://github.com/microsoft/onnxruntime/blob/19f77362d9accb915798cd18b646b21c76c5f1eb/onnxruntime/core/providers/rocm/nn/dropout.cc",
    ]
    return emit(header, args.family, sources, ops, missing)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    md = sub.add_parser("md", help="an EP section of docs/OperatorKernels.md")
    md.add_argument("path")
    md.add_argument("ep", help="section name, e.g. CUDAExecutionProvider")
    md.add_argument("--cite", required=True, help="OWNER/REPO@COMMIT the file was fetched from")
    md.add_argument("--family", default="cuda-compatible")
    md.add_argument("--who", default="CUDA-compatible stacks (Iluvatar CoreX, MetaX MACA, Moore Threads MUSA)")
    rocm = sub.add_parser("rocm", help="rocm_execution_provider.cc's registration table")
    rocm.add_argument("path")
    rocm.add_argument("--cite", required=True, help="OWNER/REPO@COMMIT the file was fetched from")
    rocm.add_argument("--types-md", action="append", default=[], metavar="PATH=OWNER/REPO@COMMIT",
                      help="an OperatorKernels.md whose CUDAExecutionProvider section types the untyped kernels")
    rocm.add_argument("--family", default="rocm-compatible")
    rocm.add_argument("--who", default="ROCm-compatible stacks (Hygon DCU's DTK)")
    args = p.parse_args(argv)
    sys.stdout.write(run_md(args) if args.mode == "md" else run_rocm(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
