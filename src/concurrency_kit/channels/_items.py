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
from concurrency_kit._core.serialize import short_repr
from concurrency_kit.channels._pipe import PACKET

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
]

PICKLED, RAW_BYTES, BATCH = 0, 1, 2
KINDS = frozenset({PICKLED, RAW_BYTES, BATCH})
PLAIN = frozenset({int, float, str, bytes, bool, type(None)})  # never out-of-band buffers
SIZED = frozenset({str, bytes})


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
    """An item that could not be rebuilt, kept in order in a handle's backlog."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def decode(
    raw: list[tuple[int, Any, Any]],
    error: Callable[[Exception], Exception],
    corrupt: Callable[[str], Exception],
    batches: dict[int, list[Any]],
) -> tuple[list[Any], list[Any] | None]:
    """Rebuild taken items from ``raw``: ``(kind, bytes, buffers)``, or for a part of a batch
    ``(BATCH, its pickle or its list, (number, first, n, count))``.

    A batch's pickle must hold a list of exactly ``count`` items (the channel wrote it so):
    one that does not fails each of its ``n`` items with ``corrupt(what)``; one that cannot be
    unpickled, with ``error(exc)``. A batch unpickled here and not used up is put in
    ``batches`` under its entry number, for
    the handle's next take (``_ring.Ring.take_from_batch``).

    Returns the items up to the first that failed, and that one (as a :class:`Failed` made
    with ``error``) with every item after it, or ``None`` if none failed.
    """
    loads = pickle.loads
    items: list[Any] = []
    failed: list[Any] | None = None
    for kind, data, extra in raw:
        parts: list[Any]
        whole: Any = None
        if kind == BATCH:
            number, first, n, count = extra
            whole = data
            if type(whole) is not list:
                try:
                    whole = loads(data)
                except Exception as exc:
                    whole = None
                    parts = [Failed(error(exc))] * n
                else:
                    if type(whole) is not list or len(whole) != count:
                        what = f"a batch of {count} items holds {short_repr(whole)}"
                        whole = None
                        parts = [Failed(corrupt(what))] * n
                    elif first + n < count:
                        batches[number] = whole
            if whole is not None:
                parts = whole[first : first + n]
                if failed is None:
                    items.extend(parts)  # plain items: none of them failed
                    continue
        elif kind == RAW_BYTES:
            parts = [data]
        else:
            try:
                parts = [loads(data, buffers=extra)]
            except Exception as exc:
                parts = [Failed(error(exc))]
        for item in parts:
            if failed is None and type(item) is Failed:
                failed = []
            if failed is None:
                items.append(item)
            else:
                failed.append(item)
    return items, failed
