"""The per-process cache of rendered result bodies: LRU by bytes, nothing kept past its bound."""

from __future__ import annotations

from service.api.rendered import ENTRY_OVERHEAD, RenderedCache


def test_least_recently_used_bodies_go_first_and_the_size_stays_bounded() -> None:
    cache = RenderedCache(max_bytes=2 * (ENTRY_OVERHEAD + 4) + 2)  # room for two 4-byte bodies
    renders: list[str] = []

    def render(key: str, size: int) -> bytes:
        return cache.get_or_render(key, lambda: renders.append(key) or b"x" * size)

    render("a", 4), render("b", 4)
    assert render("a", 4) == b"xxxx"  # a hit: a is now the most recently used
    render("c", 4)  # three would not fit: b, the least recently used, goes
    render("a", 4), render("b", 4)
    assert renders == ["a", "b", "c", "b"]
    assert (cache.hits, cache.misses) == (2, 4)


def test_a_body_larger_than_the_cache_is_served_but_not_kept() -> None:
    cache = RenderedCache(max_bytes=ENTRY_OVERHEAD + 3)
    assert cache.get_or_render("big", lambda: b"12345") == b"12345"
    assert cache.get_or_render("big", lambda: b"54321") == b"54321"
    assert cache.misses == 2


def test_size_zero_turns_it_off() -> None:
    cache = RenderedCache(max_bytes=0)
    bodies = iter([b"1", b"2"])
    assert [cache.get_or_render("k", lambda: next(bodies)) for _ in range(2)] == [b"1", b"2"]


def test_each_entry_counts_its_overhead_so_tiny_bodies_cannot_outgrow_the_bound() -> None:
    """An empty trials page is 30 bytes; every cursor offset is a key of its own. Counting only
    the bodies let 140,000 of them fill a 4 MiB cache while holding 59 MiB."""
    cache = RenderedCache(max_bytes=64 * 1024)
    for offset in range(10_000):
        cache.get_or_render(("trials", offset), lambda: b'{"data":[],"next_cursor":null}')
    assert len(cache) == 64 * 1024 // (ENTRY_OVERHEAD + 30)
