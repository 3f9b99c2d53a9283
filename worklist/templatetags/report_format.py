"""Formatting of report figures: minutes and shares, with a dash for none."""

from __future__ import annotations

from django import template

register = template.Library()

NONE = "—"


@register.filter
def minutes(seconds: float | None) -> str:
    """Seconds shown as minutes with one decimal ("12.5"), or a dash."""
    if seconds is None:
        return NONE
    return f"{seconds / 60:.1f}"


@register.filter
def percent(share: float | None) -> str:
    """A 0-1 share shown as a whole percentage ("67%"), or a dash."""
    if share is None:
        return NONE
    return f"{share * 100:.0f}%"


@register.filter
def number(value: float | None) -> str:
    """A number with one decimal, or a dash."""
    if value is None:
        return NONE
    return f"{value:.1f}"
