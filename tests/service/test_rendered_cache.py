"""The per-process cache of rendered result bodies: LRU by bytes, nothing kept past its bound."""

from __future__ import annotations

from service.api.rendered import RenderedCache


def test_least_recently_used_bodies_go_first_and_the_size_stays_bounded() -> None:
    cache = RenderedCache(max_bytes=10)
    renders: list[str] = []

    def render(key: str, size: int) -> bytes:
        return cache.get_or_render(key, lambda: renders.append(key) or b"x" * size)

    render("a", 4), render("b", 4)
    assert render("a", 4) == b"xxxx"  # a hit: a is now the most recently used
    render("c", 4)  # 12 bytes > 10: b, the least recently used, goes
    render("a", 4), render("b", 4)
    assert renders == ["a", "b", "c", "b"]
    assert (cache.hits, cache.misses) == (2, 4)


def test_a_body_larger_than_the_cache_is_served_but_not_kept() -> None:
    cache = RenderedCache(max_bytes=3)
    assert cache.get_or_render("big", lambda: b"12345") == b"12345"
    assert cache.get_or_render("big", lambda: b"54321") == b"54321"
    assert cache.misses == 2


def test_size_zero_turns_it_off() -> None:
    cache = RenderedCache(max_bytes=0)
    bodies = iter([b"1", b"2"])
    assert [cache.get_or_render("k", lambda: next(bodies)) for _ in range(2)] == [b"1", b"2"]
