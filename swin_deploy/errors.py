"""The two kinds of failure the CLI maps to exit codes.

`UserError` (exit 2): the user asked for something that cannot be done as asked (bad path,
unknown variant, corrupt file, unsupported option). Its message is one line that says what to do.
`GateFailed` (exit 1): the tool worked, and the artifact did not meet its accuracy gate.
"""


class UserError(Exception):
    """A mistake in the user's input; exit code 2."""

    exit_code = 2


class GateFailed(Exception):
    """A measured result is outside its threshold; exit code 1."""

    exit_code = 1


def missing_package(package: str, extra: str | None = None) -> UserError:
    """The error for an optional heavy dependency that is not installed."""
    hint = f"pip install 'swin-deploy[{extra}]'" if extra else f"pip install {package}"
    return UserError(f"this needs the '{package}' package, which is not installed: {hint}")
