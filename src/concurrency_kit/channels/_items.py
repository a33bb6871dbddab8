"""How a ProcessChannel item becomes bytes, and back.

An item travels as one of three *kinds*: :data:`PICKLED` (a pickle, protocol 5, with its
out-of-band buffers; cloudpickle when plain pickle fails), :data:`RAW_BYTES` (a ``bytes``
larger than a packet, sent as is), or :data:`BATCH` (a ring entry holding several small
pickles back to back, ``send_many``). Unpickling happens after the ring's mutex is released;
an item that fails to unpickle is kept, in order, as a :class:`Failed`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from concurrency_kit._core import serialize
from concurrency_kit.channels._pipe import PACKET
from concurrency_kit.errors import SerializationError

__all__ = [
    "BATCH",
    "KINDS",
    "PICKLED",
    "PLAIN",
    "RAW_BYTES",
    "SIZED",
    "Failed",
    "decode",
    "encode",
    "small_plain",
]

PICKLED, RAW_BYTES, BATCH = 0, 1, 2
KINDS = frozenset({PICKLED, RAW_BYTES, BATCH})
PLAIN = frozenset({int, float, str, bytes, bool, type(None)})  # never out-of-band buffers
SIZED = frozenset({str, bytes})


def small_plain(item: Any) -> bool:
    """Whether ``item`` is of a type that never has out-of-band buffers, and not too long
    to fit one packet (the pickle's length is checked after)."""
    kind = type(item)
    return kind in PLAIN and (kind not in SIZED or len(item) <= PACKET)


def encode(item: Any) -> tuple[int, bytes, list[pickle.PickleBuffer]]:
    """Pickle ``item`` for the wire: (kind, main bytes, out-of-band buffers).

    Raises:
        SerializationError: it cannot be pickled (by pickle, nor by cloudpickle).
    """
    kind = type(item)
    if kind is bytes and len(item) > PACKET:
        return RAW_BYTES, item, []
    if kind is bytearray and len(item) > PACKET:
        item = pickle.PickleBuffer(item)  # out of band: arrives as a bytearray
    elif kind is memoryview:
        item = _View(item)
    data, buffers = serialize.dumps_out_of_band(item, "to send on a ProcessChannel")
    return PICKLED, data, buffers


class _View:
    """A memoryview on its way: its bytes out of band, its format and shape in the pickle.

    (A memoryview cannot be pickled at all; this one arrives as a memoryview of the same
    format and shape over a new bytearray, or of bytes when the format is not native; an
    empty one arrives one-dimensional, as :meth:`memoryview.cast` makes no empty shapes.)
    """

    __slots__ = ("view",)

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def __reduce__(self) -> tuple[Any, ...]:
        view = self.view
        data = view if view.c_contiguous else view.tobytes()
        return _rebuild_view, (pickle.PickleBuffer(data), view.format, view.shape)


def _rebuild_view(data: Any, format: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(data).cast("B")
    try:
        if not view.nbytes:  # memoryview.cast refuses a shape with a zero in it
            return view.cast(format)  # type: ignore[call-overload,no-any-return]
        return view.cast(format, shape)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return view


class Failed:
    """An item that could not be unpickled, kept in order in a handle's backlog."""

    __slots__ = ("error",)

    def __init__(self, error: SerializationError) -> None:
        self.error = error


def decode(
    raw: list[tuple[int, Any, Any]], error: Callable[[Exception], SerializationError]
) -> tuple[list[Any], list[Any] | None]:
    """Rebuild taken items from ``raw``: ``(kind, bytes, buffers or batch lengths)``.

    Returns the items up to the first that failed to unpickle, and that one (as a
    :class:`Failed` made with ``error``) with every item after it, or ``None`` if none failed.
    """
    loads = pickle.loads
    items: list[Any] = []
    failed: list[Any] | None = None
    for kind, data, extra in raw:
        if kind == BATCH:
            view = memoryview(data)
            parts = []
            at = 0
            for length in extra:
                parts.append((PICKLED, view[at : at + length], None))
                at += length
        else:
            parts = [(kind, data, extra)]
        for part_kind, part, buffers in parts:
            item: Any
            if part_kind == RAW_BYTES:
                item = part
            else:
                try:
                    item = loads(part, buffers=buffers)
                except Exception as exc:
                    item = Failed(error(exc))
                    if failed is None:
                        failed = []
            if failed is None:
                items.append(item)
            else:
                failed.append(item)
    return items, failed
