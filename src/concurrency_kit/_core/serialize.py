"""Serialization across the process boundary, written once for every process-side class.

Calls and their arguments are pickled with cloudpickle, so lambdas, closures and functions
defined in ``__main__`` cross into any start method. Results go back with the C pickler first
and fall back to cloudpickle only when that fails (a result that is itself a lambda, say).

A function pickled by value keeps its file name: cloudpickle (3.1+) replaces the
``co_filename`` of every code object it pickles by ``"<dynamic-code>"``, to make its pickles
the same wherever the function was defined, and a traceback in the worker then said
``File "<dynamic-code>", line 14`` with no source line (issue 21). Our pickler
(:class:`_Pickler`) pickles code objects with :mod:`marshal` instead, which keeps every field,
the file name included, and the code objects nested in them: the worker's traceback names
the file and line, and :mod:`linecache` prints the source line where the file is readable.
Marshal's format is the running Python's, as cloudpickle's code pickles already require.

Exceptions travel with their traceback text: :class:`ExceptionWithTraceback` pickles the
exception together with the formatted traceback, and on arrival the exception is rebuilt with a
:class:`~concurrency_kit.errors.RemoteTraceback` chained as ``__cause__`` (the same shape as
CPython's ``concurrent.futures.process``). An exception that cannot itself be pickled is replaced
by a :class:`~concurrency_kit.errors.SerializationError` that keeps its type name, message and
traceback, so the caller still learns what went wrong.
"""

from __future__ import annotations

import io
import marshal
import pickle
import traceback
import types
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import cloudpickle

from concurrency_kit.errors import RemoteTraceback, SerializationError

PROTOCOL = pickle.HIGHEST_PROTOCOL


def _reduce_code(code: types.CodeType) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    """Pickle a code object whole, its file name included (see the module docstring)."""
    return marshal.loads, (marshal.dumps(code),)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler, keeping the file name of code objects (the module docstring)."""

    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        {types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table
    )


def _cloudpickle(obj: object, protocol: int, buffer_callback: Any = None) -> bytes:
    """``cloudpickle.dumps`` through :class:`_Pickler`."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()


def dumps(obj: object) -> bytes:
    """Pickle ``obj`` with cloudpickle (by value where plain pickle would need an import)."""
    return _cloudpickle(obj, PROTOCOL)


def dumps_fast(obj: object) -> bytes:
    """Pickle ``obj`` with the C pickler, falling back to cloudpickle when that fails."""
    try:
        return pickle.dumps(obj, protocol=PROTOCOL)
    except Exception:
        return dumps(obj)


def dumps_value(value: object, purpose: str) -> bytes:
    """Pickle ``value`` (C pickler first, as :func:`dumps_fast`) for ``purpose``.

    Raises:
        SerializationError: it cannot be pickled; the message names it and ``purpose``.
    """
    try:
        return dumps_fast(value)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle {short_repr(value)} {purpose}: {type(exc).__name__}: {exc}"
        ) from exc


def dumps_out_of_band(value: object, purpose: str) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``value`` with protocol 5, its large buffers (``PickleBuffer``, NumPy arrays)
    left out of band for the caller to copy once (C pickler first, as :func:`dumps_fast`).

    Returns:
        The pickle, and the buffers it refers to, in order.

    Raises:
        SerializationError: it cannot be pickled; the message names it and ``purpose``.
    """
    buffers: list[pickle.PickleBuffer] = []
    try:
        return pickle.dumps(value, 5, buffer_callback=buffers.append), buffers
    except Exception:
        buffers.clear()
    try:
        data = _cloudpickle(value, 5, buffers.append)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle {short_repr(value)} {purpose}: {type(exc).__name__}: {exc}"
        ) from exc
    return data, buffers


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Unpickle data produced by :func:`dumps` or :func:`dumps_fast`."""
    return pickle.loads(data)


def dumps_call(
    fn: Callable[..., object], args: tuple[object, ...], kwargs: Mapping[str, object] | None
) -> bytes:
    """Pickle a call for a worker process, naming the offending value when that fails.

    Raises:
        SerializationError: ``fn``, one of ``args`` or one of ``kwargs`` cannot be pickled.
    """
    try:
        return dumps((fn, args, kwargs))
    except Exception as exc:
        raise _call_error(fn, args, kwargs, exc) from exc


def _call_error(
    fn: Callable[..., object],
    args: tuple[object, ...],
    kwargs: Mapping[str, object] | None,
    exc: BaseException,
) -> SerializationError:
    """Find which part of a call cannot be pickled, to say so in the error."""
    parts: list[tuple[str, object]] = [("the function", fn)]
    parts += [(f"argument {i}", arg) for i, arg in enumerate(args)]
    parts += [(f"keyword argument {key!r}", value) for key, value in (kwargs or {}).items()]
    for label, value in parts:
        try:
            dumps(value)
        except Exception as part_exc:
            return SerializationError(
                f"cannot send {label} ({short_repr(value)}) to a worker process: "
                f"{type(part_exc).__name__}: {part_exc}"
            )
    return SerializationError(
        f"cannot send the call to a worker process: {type(exc).__name__}: {exc}"
    )


def short_repr(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_unpicklable(what: str, value: object, exc: BaseException) -> SerializationError:
    """The error for a result or value that could not be pickled in a worker."""
    return SerializationError(
        f"cannot send {what} ({short_repr(value)}) back from the worker process: "
        f"{type(exc).__name__}: {exc}"
    )


class ExceptionWithTraceback:
    """An exception packed with its traceback text for the trip to another process."""

    __slots__ = ("exc", "tb")

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def __reduce__(self) -> tuple[object, ...]:
        exc: BaseException = self.exc
        try:
            pickle.loads(dumps_fast(exc))
        except Exception as pickle_exc:
            exc = SerializationError(
                f"the worker raised {type(self.exc).__qualname__}: {_safe_str(self.exc)}, "
                f"which cannot be sent back ({type(pickle_exc).__name__}: {pickle_exc})"
            )
        return rebuild_exception, (exc, self.tb)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable>"


def rebuild_exception(exc: BaseException, tb: str) -> BaseException:
    """Chain the remote traceback text to a rebuilt exception (unpickling side)."""
    exc.__cause__ = RemoteTraceback(tb)
    return exc
