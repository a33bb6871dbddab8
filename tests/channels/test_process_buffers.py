"""Buffers a ProcessChannel sends out of band: bytearray and memoryview, which pickle cannot
send (memoryview) or would copy into the pickle (bytearray)."""

from __future__ import annotations

import array

import numpy

from concurrency_kit import ProcessChannel


def round_trip(item: object) -> object:
    """``item`` sent through a new channel and received back."""
    with ProcessChannel[object]() as channel:
        channel.send(item)
        return channel.recv(timeout=30)


def test_a_large_bytearray_arrives_as_a_bytearray() -> None:
    sent = bytearray(range(256)) * 1000
    got = round_trip(sent)
    assert type(got) is bytearray
    assert got == sent


def test_a_small_bytearray_travels_in_a_packet() -> None:
    assert round_trip(bytearray(b"xy")) == bytearray(b"xy")


def test_a_memoryview_keeps_its_format_and_shape() -> None:
    numbers = array.array("i", range(10_000))
    got = round_trip(memoryview(numbers))
    assert isinstance(got, memoryview)
    assert (got.format, got.shape) == ("i", (10_000,))
    assert got.tolist() == numbers.tolist()
    matrix = numpy.arange(12.0).reshape(3, 4)
    got = round_trip(memoryview(matrix))
    assert isinstance(got, memoryview)
    assert (got.format, got.shape) == ("d", (3, 4))
    assert numpy.array_equal(numpy.asarray(got), matrix)


def test_a_non_contiguous_memoryview_arrives_contiguous() -> None:
    every_other = memoryview(array.array("q", range(100)))[::2]
    got = round_trip(every_other)
    assert isinstance(got, memoryview)
    assert got.tolist() == list(range(0, 100, 2))
