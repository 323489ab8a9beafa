"""Long texts cut into messages: the one rule every transport and the digests use.

``split_text`` cuts at paragraph boundaries (blank lines) first, then at line
breaks, then at spaces. The transports send the pieces; ``digests.render``
uses the same rule to make the monthly summary fit in two messages.
Pure: no imports of our own.
"""

from __future__ import annotations

from collections.abc import Callable


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, or ``limit`` units of
    ``measure`` (Telegram passes UTF-16 code units: an emoji is two).

    Paragraph boundaries (blank lines) are preferred, then line breaks, then
    spaces; only a single word longer than the limit is cut inside.
    """
    if measure(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while measure(rest) > limit:
        fit = _fitting(rest, limit, measure)
        window = rest[: fit + 1]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            cut = window.rfind(separator)
            if cut > 0:
                break
        if cut <= 0:
            pieces.append(rest[:fit])
            rest = rest[fit:]
            continue
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip():
        pieces.append(rest)
    return [p for p in pieces if p.strip()]


def _fitting(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """How many characters from the start of ``text`` fit in ``limit`` units (at least one)."""
    low, high = 1, min(len(text), limit)  # every character is at least one unit
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low
