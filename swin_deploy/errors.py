"""The two kinds of failure the CLI maps to exit codes.

`UserError` (exit 2): the user asked for something that cannot be done as asked (bad path,
unknown variant, corrupt file, unsupported option). Its message is one line that says what to do.
`GateFailed` (exit 1): the tool worked, and the artifact did not meet its accuracy gate.

Messages name a parameter as `name` (the Python parameter, in backticks); `render()` lets a front end
spell it its own way (the command line shows `--name`).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable

_PARAM = re.compile(r"`([a-z][a-z0-9_]*)`")


def spell_params(text: str, spell: Callable[[str], str]) -> str:
    """`text` with every `param` reference spelled by `spell(name)` (errors and notes alike)."""
    return _PARAM.sub(lambda m: spell(m.group(1)), text)


class SwinDeployError(Exception):
    exit_code = 1

    def render(self, spell: Callable[[str], str]) -> str:
        """The message with every `param` reference spelled by `spell(name)`."""
        return spell_params(str(self), spell)


class UserError(SwinDeployError):
    """A mistake in the user's input; exit code 2."""

    exit_code = 2


class NoMetadata(UserError):
    """An ONNX or IR without swin-deploy's metadata, read where no `variant` says what model it is."""


class GateFailed(SwinDeployError):
    """A measured result is outside its threshold; exit code 1."""

    exit_code = 1


def require_at_least(name: str, value: float | None, minimum: float) -> None:
    """A UserError naming parameter `name` and its value unless `value` is at least `minimum` (None: not given)."""
    if value is not None and value < minimum:
        raise UserError(f"`{name}` must be at least {minimum:g}, not {value:g}")


def require_file(path, fix: str, what: str = "") -> None:
    """A UserError unless `path` is a file: "`what` PATH does not exist: `fix`", or "... is a folder, not a file: ..."
    (a folder passed where a file belongs would otherwise read as missing)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"{what + ' ' if what else ''}{path} {state}: {fix}")


def missing_package(package: str, extra: str | None = None) -> UserError:
    """The error for an optional heavy dependency that is not installed."""
    hint = f"pip install 'swin-deploy[{extra}]'" if extra else f"pip install {package}"
    return UserError(f"this needs the '{package}' package, which is not installed: {hint}")


# a full disk or quota: the environment's limit, not a bug, and the user can act on it
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(error: BaseException, writing: str | None = None) -> UserError | None:
    """The UserError for an OSError that says the disk or quota is full (None for any other error)."""
    if not isinstance(error, OSError) or error.errno not in _OUT_OF_SPACE:
        return None
    where = f" writing {writing}" if writing else ""
    return UserError(f"no space left on the device{where} ({error.strerror or error}): free some space, or write to "
                     "another disk")
