"""Parsing the compact text forms users write sizes and limits in ('224,256', '1,8,32', '4GiB', '10%')."""

from __future__ import annotations

import math
import operator
from pathlib import Path

from .errors import UserError


def one_or_many(value) -> tuple | None:
    """A setting that takes several values, given one alone (a str, a number) or several; None stays None. A str
    would otherwise be taken apart into its letters."""
    if value is None:
        return None
    return (value,) if isinstance(value, (str, int)) or not hasattr(value, "__iter__") else tuple(value)


def as_hw(size, param: str) -> tuple[int, int] | None:
    """A size as the library takes it: one side (224, as timm takes img_size) or (H, W) in any sequence; None stays
    None."""
    if size is None:
        return None
    try:
        hw = (operator.index(size),) * 2 if not hasattr(size, "__len__") else tuple(map(operator.index, size))
    except TypeError:  # a float, a str: operator.index takes whole numbers only (numpy's too)
        hw = ()
    if len(hw) != 2:
        raise UserError(f"`{param}` takes one side or (H, W) in whole pixels, not {size!r}")
    return hw


def parse_hw(text: str, param: str) -> tuple[int, int]:
    """'224' or '224,256' or '224x256' -> (H, W)."""
    parts = text.strip().lower().replace("x", ",").split(",")
    try:  # every part a number: '64,x' or '64x' is a slip, not 64x64
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise UserError(f"`{param}` takes a side or HxW (or H,W), e.g. 224 or 256x320; not '{text}'")
    return (values[0], values[-1])


def parse_hw_list(text: str, param: str) -> list[tuple[int, int]]:
    """'224,256x320' -> [(224, 224), (256, 320)]: comma-separated sizes, each a side or HxW."""
    sizes = [parse_hw(t, param) for t in text.split(",") if t.strip()]
    if not sizes:
        raise UserError(f"`{param}` takes comma-separated sizes, each a side or HxW, e.g. 224,256x320; not '{text}'")
    return sizes


def parse_ints(text: str, param: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        values = []
    if not values:  # '' or ',' would otherwise mean the defaults
        raise UserError(f"`{param}` takes comma-separated integers, e.g. 1,8,32; not '{text}'")
    return values


def parse_floats(text: str, param: str) -> tuple[float, ...]:
    """'0.5,0.5,0.5' -> (0.5, 0.5, 0.5)."""
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        values = ()
    if not values or not all(map(math.isfinite, values)):  # nan and inf parse as floats
        raise UserError(f"`{param}` takes comma-separated numbers, e.g. 0.5,0.5,0.5; not '{text}'")
    return values


def parse_bytes(text: str, param: str) -> int:
    """'4GiB', '512MiB', '1g' or a plain byte count -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, KeyError, OverflowError):  # OverflowError: 'infg'
        raise UserError(f"`{param}` takes a size like 4GiB or 512MiB, not '{text}'") from None


def format_bytes(n: float) -> str:
    """bytes -> '1.5 GiB', '300 MiB', '12 KiB' (as parse_bytes reads them)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def parse_fraction(text: str, param: str) -> float:
    """'10%' or '0.1' -> 0.1."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # nan and inf parse as floats
        raise UserError(f"`{param}` takes a fraction like 10% or 0.1, not '{text}'")
    return value


def read_class_names(path: str | Path, param: str) -> tuple[str, ...]:
    """A text file of class names, one per line in class-index order (timm's class_map .txt, Triton's labels.txt)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read `{param}` {path} ({type(e).__name__}): give a text file, one class name per "
                        "line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    empty = next((n for n, line in enumerate(lines, 1) if not line.strip()), None)
    if not lines or empty is not None:
        what = f"line {empty} is empty" if empty else "no names"
        raise UserError(f"`{param}` {path.name}: {what}; give one class name per line, in class-index order")
    return tuple(line.strip() for line in lines)
